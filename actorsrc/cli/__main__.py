"""`python -m actorsrc.cli ...`: the same as the `actorsrc` command."""

import sys

from actorsrc.cli import main

sys.exit(main())
