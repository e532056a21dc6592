"""The shared platform every service builds on. It imports no service."""
