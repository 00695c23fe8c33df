"""JWT authorization, as the reference's default claim mapper and authorizer (see authorizer.py)."""
