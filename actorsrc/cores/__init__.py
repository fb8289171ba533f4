"""One runtime process per core on one machine (`Runtime.for_cores(Cores(directory, count), ...)`).

Each process claims a free part of the directory (an exclusive OS lock), owns the aggregate instances
placed on that part (`part_of`: the read side's partition of the stream's slice), writes their events to
the part's own SQLite file (or to a PostgreSQL store all the parts share), and takes commands for them
from the other processes over its Unix socket. Any process can send any instance a command. Each part
runs its own partition of every projection, with a checkpoint of its own. `run(count, main)` starts and
keeps `count` processes running.
"""

from actorsrc.cores.launcher import run
from actorsrc.cores.placement import part_of
from actorsrc.cores.settings import Cores

__all__ = ["Cores", "part_of", "run"]
