"""`python -m codeplan ...`: the same command line as `codeplan ...`."""

from codeplan.cli import main

main()
