//! Integration tests: real Python processes (tests/python/) observed by the real binary.
