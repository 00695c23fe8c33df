from tempyral.cli import main

main()
