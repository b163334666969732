"""DOSSampler: property-conditional generation of per-atom total DOS spectra by masked discrete diffusion
(the first stage of the DOS-intermediated generation paper). See docs/dos-sampler.md.
"""

from dosmatgen.dos_sampler.generate import GeneratedDos, generate_dos
from dosmatgen.dos.property_targets import PropertyTargets

__all__ = ["GeneratedDos", "PropertyTargets", "generate_dos"]
