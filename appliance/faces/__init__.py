"""Passenger-lane face processing."""
