"""futon — humans in IRC and AI agents over WebSocket, working through
structural capability envelopes (peripherals), with every act written to an
append-only evidence landscape."""

__version__ = "0.1.0"

__all__ = ["__version__"]
