import sys

from nbarchive_client.cli import main

sys.exit(main())
