"""``PreferenceMatchingCallback``: this project's exact evaluation inside any TRL run.

Every ``every`` optimizer steps the callback computes the policy's exact distribution over
a synthetic task's candidates by teacher forcing
(:func:`~pmrlhf.lm_experiments.evaluate_candidates`, docs/theory.md §5) and logs
:data:`LOGGED` (means over prompts) through the trainer's own logging, hence to whatever
``report_to`` names, and into ``trainer.state.log_history``.

In a run of several processes every process evaluates a share of the prompts and all of
them hold the whole task's result (``_evaluation.py``): every process fills the same
:attr:`~PreferenceMatchingCallback.history`, and the trainer's log (which reports from the
main process) carries the whole task's values.
"""

from __future__ import annotations

from transformers import TrainerCallback

from .._validation import check_positive_int
from ..errors import PmrlhfTypeError
from ._evaluation import evaluate_shared, parameters_sharded, process_layout

LOGGED = ("pairwise_pmd", "tv_to_target", "minority_mass", "coverage")
"""The metrics logged at each evaluation (docs/theory.md §5); :attr:`history` keeps all."""


def evaluate_policy(model, tokenizer, task, *, rewards=None) -> dict:
    """:func:`~pmrlhf.lm_experiments.evaluate_candidates` of a model as a trainer holds it:
    unwrapped from DDP, with its LoRA layers in place for a PEFT model, and with a
    processor's tokenizer; its train/eval mode is left as it was."""
    from ..lm_experiments.data.tasks import SyntheticTask
    from ..lm_experiments.evaluate.exact import evaluate_candidates

    if not isinstance(task, SyntheticTask):
        raise PmrlhfTypeError(
            f"task must be a SyntheticTask (pmrlhf.lm_experiments.load_task), got "
            f"{type(task).__name__}"
        )
    model, tokenizer = policy_view(model, tokenizer)
    training = model.training
    try:
        return evaluate_candidates(model, tokenizer, task, rewards=rewards)
    finally:
        model.train(training)


def policy_view(model, tokenizer):
    """``(model, tokenizer)`` as :func:`evaluate_candidates` takes them: the model unwrapped
    from DDP, its PEFT base model (the injected LoRA layers act inside it), a processor's
    tokenizer."""
    from accelerate.utils import extract_model_from_parallel, is_peft_model

    model = extract_model_from_parallel(model)
    if is_peft_model(model):
        model = model.get_base_model()
    return model, getattr(tokenizer, "tokenizer", tokenizer)


class PreferenceMatchingCallback(TrainerCallback):
    """Evaluate the candidate distribution exactly every ``every`` steps; log :data:`LOGGED`.

    Parameters
    ----------
    task : SyntheticTask
        The task whose candidates are evaluated (train on ``task.to_dataset()``).
    every : int
        Evaluate after every ``every``-th optimizer step (and force a log there).
    trainer : transformers.Trainer, optional
        The trainer to log through. :class:`~pmrlhf.trl.PMRLOOTrainer` and
        :class:`~pmrlhf.trl.PMGRPOTrainer` bind their callbacks themselves; with another
        trainer pass it, or call :meth:`bind` (``trainer.add_callback(cb.bind(trainer))``).
    rewards : list of arrays, optional
        Candidate rewards per prompt whose ``softmax`` is the target (default: the oracle's).

    Attributes
    ----------
    history : list of dict
        ``{"step": s, **evaluate_candidates(...)}`` per evaluation, per-prompt
        distributions included; the same on every process of a multi-process run
        (:meth:`evaluate`).
    """

    def __init__(self, task, every: int = 10, *, trainer=None, rewards=None):
        from ..lm_experiments.data.tasks import SyntheticTask

        if not isinstance(task, SyntheticTask):
            raise PmrlhfTypeError(
                f"task must be a SyntheticTask (pmrlhf.lm_experiments.load_task), got "
                f"{type(task).__name__}"
            )
        self.task = task
        self.every = check_positive_int(every, "every")
        self.rewards = rewards
        self.trainer = None
        self.history: list[dict] = []
        if trainer is not None:
            self.bind(trainer)

    def bind(self, trainer) -> PreferenceMatchingCallback:
        """Log through ``trainer`` (its ``log``); returns the callback."""
        if not callable(getattr(trainer, "log", None)):
            raise PmrlhfTypeError(
                f"trainer must be a transformers Trainer, got {type(trainer).__name__}"
            )
        self.trainer = trainer
        return self

    def evaluate(self, model, tokenizer) -> dict:
        """:func:`evaluate_policy` of ``model`` on this callback's task and rewards.

        With several processes (``torch.distributed`` initialised) every process must call
        it: each evaluates its share of the prompts and all return the whole task's result.
        DDP: ``model`` unwrapped, run locally. Sharded parameters (FSDP, DeepSpeed ZeRO-3,
        told by the bound trainer): the trainer's ``model_wrapped`` runs instead, on every
        process the same forward calls (untested here with FSDP or DeepSpeed themselves).
        """
        rank, world = process_layout()
        if world == 1:
            return evaluate_policy(model, tokenizer, self.task, rewards=self.rewards)
        sharded = parameters_sharded(self.trainer)
        # Sharded: the wrapper gathers the parameters; its inner module cannot run alone.
        model = self.trainer.model_wrapped if sharded else policy_view(model, tokenizer)[0]
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
        return evaluate_shared(
            model, tokenizer, self.task, rewards=self.rewards, rank=rank, world=world,
            sharded=sharded,
        )  # fmt: skip

    def on_train_begin(self, args, state, control, **kwargs):
        if self.trainer is None:
            raise RuntimeError(
                "PreferenceMatchingCallback has no trainer to log through: construct it with "
                "trainer=... or add it with trainer.add_callback(callback.bind(trainer)) "
                "(PMRLOOTrainer and PMGRPOTrainer bind the callbacks given to them)"
            )
        return control

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if state.global_step % self.every:
            return control
        result = self.evaluate(model, processing_class)
        self.history.append({"step": state.global_step, **result})
        metrics = {key: result[key] for key in LOGGED}
        pool = getattr(self.trainer, "_metrics", None)
        if isinstance(pool, dict) and "train" in pool:
            # A TRL trainer: its next log averages and reports this pool (one value each).
            for key, value in metrics.items():
                pool["train"][key].append(value)
            control.should_log = True
        else:
            self.trainer.log(metrics)
        return control
