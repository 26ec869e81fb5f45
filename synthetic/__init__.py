"""A realistic synthetic province: department extracts with injected errors and ground truth.

No real government data may be used to develop or test datong; this package makes a
coherent province instead (households, births, marriages, deaths, enterprises, licences,
penalties) and delivers it the way departments do, mistakes included.
"""
