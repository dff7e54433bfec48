"""Energy estimation from counted operations while the model runs on evaluation data.

    energy_pj = MACs * E_MAC + ACs * E_AC            (defaults: 4.6 pJ and 0.9 pJ, 45 nm FP32, Horowitz 2014)

MACs are counted where a layer's input is real-valued (the encoding layer under direct encoding), ACs
where it is binary spikes. Counts are exact synaptic operations: for a spike input x and a weight w,
the number of (non-zero input, non-zero weight) pairs, e.g. conv(1[x!=0], 1[w!=0]).sum(); for a
real-valued input every input position counts, times the surviving (non-zero) weights. Counts are per
sample and summed over the T time steps. BatchNorm (foldable into the preceding layer), pooling and
neuron updates are not counted. The MAC/AC model ignores memory traffic.
"""

from sltsearch.energy.counter import EnergyReport, LayerCount, measure_energy

__all__ = ["EnergyReport", "LayerCount", "measure_energy"]
