from lmscale.cli import main

main()
