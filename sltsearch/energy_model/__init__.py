"""Energy and cost estimation from operations counted while the model runs on evaluation data.

    energy_pj = MACs * E_MAC + (ACs + binary_ops) * E_AC [+ neuron updates * E_NEURON] [+ SRAM traffic]

(defaults: E_MAC 4.6 pJ, E_AC 0.9 pJ, 45 nm FP32, Horowitz 2014; E_NEURON 4.6 pJ, off by default).
Counts are exact, per sample, summed over the T time steps: MACs where a layer's input is real-valued
(every input position with ``real_inputs: all``, the default; only non-zero ones with ``nonzero``, as
NeuroBench counts), ACs where it is binary spikes (the number of (non-zero input, non-zero weight)
pairs, the NeuroBench way: conv(1[x!=0], 1[w!=0]).sum()), binary_ops for binarized-weight layers, and
the spike-driven pairs of `SpikeMatmul` (attention) products. Integer, non-binary inputs follow
``nonbinary`` (mac | ac_weighted). The ``memory`` model adds SRAM traffic with spikingjelly's Lemaire
(2022) costs; the default ``mac_ac`` model ignores memory traffic. Storage: dense fp32, CSR-like sparse,
1-bit binarized; see `layer_storage`. Input kinds are decided once per measurement, so per-sample counts
do not depend on the batch size. The rules are stated in `sltsearch.energy_model.counter` and docs/energy.md.

Named ``energy_model`` (not ``energy``) so that the package never shadows the function ``sltsearch.energy``.
"""

from sltsearch.energy_model.counter import measure_energy
from sltsearch.energy_model.counts import EnergyReport, LayerCount, layer_storage
from sltsearch.energy_model.layer_ops import input_kind

__all__ = ["EnergyReport", "LayerCount", "input_kind", "layer_storage", "measure_energy"]
