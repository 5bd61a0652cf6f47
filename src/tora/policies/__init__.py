"""Each method as a policy: what it trains (its stages), how it loads, and how it acts under a
preference. The benchmark suites find methods through :mod:`tora.policies.registry`."""
