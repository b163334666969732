"""Densities of states: grids, records, featurizers, scalers and DOS-derived properties."""
