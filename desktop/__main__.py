import sys

if __name__ == "__main__":  # spawned decoding and batch processes import this module too: no Qt for them
    from desktop.app import main

    sys.exit(main())
