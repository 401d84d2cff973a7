"""Start the BabbleFish server: `python server_cpu.py --help` lists every setting."""

import sys

from babelfish.cli import main

if __name__ == "__main__":
    sys.exit(main())
