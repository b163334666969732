"""Property-conditional design through the total DOS (issue 16): a DOS source gives total DOS that meet the
property targets, the total-DOS generator (``cond_mode: total``) turns each into crystals, and the screen stages
relax, filter and rank them. See docs/design.md.

* :mod:`dosmatgen.dos.property_targets` -- the property targets (``--band-gap`` ...), their validation and tolerance test;
* :mod:`dosmatgen.design.sources` -- where the conditioning total DOS come from (``dossampler``, ``dataset``, ``like``);
* :mod:`dosmatgen.design.like` -- a reference crystal's total DOS (dataset, surrogate or GPAW);
* :mod:`dosmatgen.design.total_dos` -- the surrogate total DOS of a crystal;
* :mod:`dosmatgen.design.sampler` / :mod:`dosmatgen.design.scorer` -- the sample and rank stages of a design run;
* :mod:`dosmatgen.design.pipeline` -- ``dosmatgen design`` end to end;
* :mod:`dosmatgen.design.cdosgen_check` -- conditioning DOS vs surrogate DOS of generated crystals, against random pairs.
"""
