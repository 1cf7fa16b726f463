from nnrun.cli import main

main()
