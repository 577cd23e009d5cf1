"""Supervised regularisers as plugins of the offline learner, one file per paper.

``PLUGINS`` holds every plugin class by name and ``get_plugin(name)`` looks one up (an unknown
name lists the known ones). The pure math of each method is importable from here.
"""

from regrl.agents.offline.base import (
    PLUGINS,
    TASKS,
    NoParams,
    Plugin,
    TaskInfo,
    build_plugins,
    check_combination,
    get_plugin,
    register_plugin,
)
from regrl.agents.offline.compander import compander, compander_inverse
from regrl.agents.offline.dispersive import dispersive_loss
from regrl.agents.offline.elr import elr_penalty, elr_update_targets
from regrl.agents.offline.ensemble_distill import distill_targets, ensemble_probs
from regrl.agents.offline.ftwt import binary_mask, head_loss, masked_flops, mass_targets
from regrl.agents.offline.glad import glad_gradient, sam_perturbation
from regrl.agents.offline.hft import hft_select_frozen
from regrl.agents.offline.ignite import ignite_dual_update, ignite_gradient
from regrl.agents.offline.lipschitz import (
    certified_lipschitz_bound,
    model_lipschitz_bound,
    project_spectral_norm,
    spectral_norm,
)
from regrl.agents.offline.mask_tuning import gradient_dropout, ste_mask
from regrl.agents.offline.mixup import mixup, sample_mixup_lambda
from regrl.agents.offline.msbreg import (
    brownian_loss,
    msbreg_loss,
    multiview_centroid_loss,
    singular_value_loss,
)
from regrl.agents.offline.nested_coteaching import (
    coteaching_forget_rate,
    coteaching_select,
    nested_dropout_mask,
    nested_dropout_probs,
)
from regrl.agents.offline.orthogonality import orthogonality_penalty, soft_orthogonality
from regrl.agents.offline.pg_noise_mask import (
    apply_noise_mask,
    mask_log_prob,
    reinforce_loss,
    update_baseline,
)
from regrl.agents.offline.pskd import pskd_alpha, pskd_targets
from regrl.agents.offline.self_distill import weighted_distillation_targets
from regrl.agents.offline.soft_equivariance import equivariance_penalty, soft_equivariance_loss
from regrl.agents.offline.stablemax import (
    OrthoGrad,
    orthogonal_gradient,
    stablemax,
    stablemax_cross_entropy,
)
from regrl.agents.offline.stn import (
    hyper_objective,
    per_sample_dropout,
    perturb,
    perturbation_entropy,
    stn_linear,
)

__all__ = [
    "PLUGINS",
    "TASKS",
    "Plugin",
    "NoParams",
    "TaskInfo",
    "get_plugin",
    "register_plugin",
    "check_combination",
    "build_plugins",
    "elr_penalty",
    "elr_update_targets",
    "pskd_alpha",
    "pskd_targets",
    "mixup",
    "sample_mixup_lambda",
    "nested_dropout_probs",
    "nested_dropout_mask",
    "coteaching_forget_rate",
    "coteaching_select",
    "stablemax",
    "stablemax_cross_entropy",
    "orthogonal_gradient",
    "OrthoGrad",
    "spectral_norm",
    "project_spectral_norm",
    "certified_lipschitz_bound",
    "model_lipschitz_bound",
    "dispersive_loss",
    "compander",
    "compander_inverse",
    "ignite_gradient",
    "ignite_dual_update",
    "sam_perturbation",
    "glad_gradient",
    "weighted_distillation_targets",
    "hft_select_frozen",
    "soft_orthogonality",
    "orthogonality_penalty",
    "multiview_centroid_loss",
    "singular_value_loss",
    "brownian_loss",
    "msbreg_loss",
    "equivariance_penalty",
    "soft_equivariance_loss",
    "stn_linear",
    "perturb",
    "perturbation_entropy",
    "hyper_objective",
    "per_sample_dropout",
    "apply_noise_mask",
    "mask_log_prob",
    "reinforce_loss",
    "update_baseline",
    "mass_targets",
    "masked_flops",
    "head_loss",
    "binary_mask",
    "ensemble_probs",
    "distill_targets",
    "ste_mask",
    "gradient_dropout",
]
