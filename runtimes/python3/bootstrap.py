"""bootstrap.py - entry point of wisp's Python runtime; the work is in
wisp_bootstrap.py beside it (see there). The daemon runs

    /usr/bin/python3 -S -B /var/runtime/python3/bootstrap.py

A script is compiled at every start, an imported module is not (its .pyc in
__pycache__ is used), so this file stays tiny. wisp_bootstrap takes this
folder off sys.path again before it loads the function's code.
"""
import wisp_bootstrap

wisp_bootstrap.main()
