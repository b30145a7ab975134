from seqmask.cli import main

main()
