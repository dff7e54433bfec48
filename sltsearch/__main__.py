from sltsearch.cli import main

main()
