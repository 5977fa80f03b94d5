"""A profile's dataset as the analyses read it: the scan folder (``dataset``: complete, or an error
naming ``prepare``; it never simulates), the clean selection (``selection``) and the network
inputs' preprocessing (``preprocessing``)."""
