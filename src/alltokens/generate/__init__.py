"""Generation on token ids: a pure sampler, a KV-cached decoding loop, and a thin text layer on top.

The engine (`generate_ids`) yields ids and knows nothing of text, so the same loop decodes text,
image codes and audio codes; `generate.text` turns ids into streamed text with stop strings.
"""

from alltokens.generate.engine import FINISHED, generate_ids
from alltokens.generate.sampling import SamplingSettings, sample

__all__ = ["FINISHED", "SamplingSettings", "generate_ids", "sample"]
