"""The metrics engine: a declarative registry of portable (Ibis) metric queries over a daily rollup."""
