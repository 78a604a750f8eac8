from navarch.cli import main

main()
