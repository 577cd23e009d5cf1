"""Everything the text/RLVR domain registers into the core's tables, in one place (the core
names this module in :data:`regrl.trainers.plugins.DOMAIN_PLUGINS` and imports it on its first
lookup): the ``rlvr`` and ``sft`` experiment kinds."""

from regrl.trainers.kinds import register_kind
from regrl.trainers.rlvr.driver import RLVRDriver, SFTDriver

register_kind("rlvr", "language-model RL with verifiable rewards on Ray core actors")(RLVRDriver)
register_kind("sft", "supervised fine-tuning of a language model on solved problems")(SFTDriver)
