"""`seppo train`: one loop for SePPO and its baselines (DESIGN.md §1, Algorithm 1).

Read top to bottom:
    set up   → run directory, accelerate, model, cached data, policy and optimizer, reference pool
    for each update (K iterations × U updates):
        draw reference  (start of each iteration, or every update with redraw=update)
        one update      micro-batches (seppo.update: sampling phase, training phase) → step
        snapshot θ_k (end of iteration) → log → checkpoint
    export the final model

The method is the config's: `load_config` has written its reference strategy and flipper
into `cfg` (seppo.methods), and seppo.update picks its second half and loss by table. The
loop itself names no method, no data source and no model: `cfg.model.path` and
`cfg.data.source` are resolved by seppo.paths and seppo.data (the embedded world is built
before the loop by `seppo.embedded.world.ensure_world`, as `seppo train` does).

Each update costs one host sync: the finite check of loss and gradient norm, fused with the
logged metrics on the updates that log (tests/test_train.py counts it).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from seppo import __version__, paths, shared_samples, trackers
from seppo.backbone import expected_warnings_silenced, load_backbone
from seppo.checkpoint import complete_checkpoints, load_checkpoint, save_checkpoint
from seppo.config import Config, to_dict
from seppo.data.dataset import open_dataset
from seppo.data.loader import BatchOrder, flip_mask, shard
from seppo.errors import SeppoError
from seppo.export import export_final
from seppo.policy import FROZEN_DTYPES, setup_policy
from seppo.pool import ReferencePool
from seppo.run_dir import RunDir
from seppo.sharding import load_optimizer_state, shard_ema, whole, whole_ema_state, whole_optimizer_state
from seppo.update import update_losses

EXIT_INTERRUPTED = 3  # documented in the README: a checkpoint was written, resume with resume=true
EXIT_LAUNCHER_GONE = 4  # documented in the README: the launcher died and this worker could not stop cleanly


class StopFlag:
    """SIGTERM/SIGINT: finish the current update, checkpoint, exit. A second SIGINT aborts."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{signal.Signals(signum).name}: finishing this update, then writing a checkpoint", file=sys.stderr)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class LauncherWatch:
    """A worker started by a launcher (torchrun, accelerate launch) stops when the launcher dies.

    The launcher starts each worker in a session of its own, so killing the launcher's process
    group leaves the workers running. A daemon thread notices the new parent and sends this
    process SIGTERM (finish the update, checkpoint, exit 3); a worker stuck past that (in a
    collective, whose timeout then ends it) is ended `grace` seconds later."""

    def __init__(self, grace: float, poll: float = 1.0):
        self.grace, self.poll = grace, poll
        self._done = threading.Event()
        self._launcher = os.getppid()

    def __enter__(self):
        if "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ:
            threading.Thread(target=self._watch, name="seppo-launcher-watch", daemon=True).start()
        return self

    def _watch(self):
        while not self._done.wait(self.poll):
            if os.getppid() != self._launcher:
                print(f"the launcher (pid {self._launcher}) is gone: stopping", file=sys.stderr)
                os.kill(os.getpid(), signal.SIGTERM)
                if not self._done.wait(self.grace):
                    os._exit(EXIT_LAUNCHER_GONE)
                return

    def __exit__(self, *exc):
        self._done.set()


# --------------------------------------------------------------------------- the loop


# accelerate's switches for the sharded engines (set by `accelerate launch` from a config file).
SHARDED_ENGINES = {"ACCELERATE_USE_FSDP": "FSDP", "ACCELERATE_USE_DEEPSPEED": "DeepSpeed"}


def refuse_sharded_engines() -> None:
    """Under accelerate's own sharded engines, checkpoints would hold the main process's view of
    weights and optimizer state that they shard. seppo shards with FSDP itself
    (`train.sharding: fsdp`, seppo.sharding) and gathers whole state; DeepSpeed is not supported."""
    for var, engine in SHARDED_ENGINES.items():
        if os.environ.get(var, "").lower() in ("1", "true", "yes"):
            instead = ("set train.sharding=fsdp instead, under torchrun or accelerate launch without FSDP in its config"
                       if engine == "FSDP" else "use data parallel (configs/accelerate/ddp-8gpu.yaml)")
            raise SeppoError(f"{engine} through accelerate is not supported ({var} is set by the accelerate "
                             f"config): {instead}")


def train(cfg: Config, *, progress: bool | None = None) -> Path:
    refuse_sharded_engines()
    # The schedule counts optimizer updates: one `lr_scheduler.step()` per update, whatever the
    # process count (accelerate's default steps it once per process, for dataloaders it scales).
    accelerator = Accelerator(mixed_precision=cfg.train.mixed_precision, cpu=not torch.cuda.is_available(),
                              step_scheduler_with_optimizer=False,
                              kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=cfg.train.collective_timeout))],
                              **trackers.accelerator_kwargs(cfg))
    is_main, world = accelerator.is_main_process, accelerator.num_processes
    sharded = cfg.train.sharding == "fsdp" and world > 1  # FSDP (seppo.sharding), else data parallel
    progress = cfg.log.progress if progress is None else progress
    set_seed(cfg.seed)
    wall0 = time.time()

    # ─── set up ───
    run = RunDir(cfg.output_dir)
    run.prepare(cfg, is_main, accelerator.wait_for_everyone)
    accelerator.wait_for_everyone()
    trackers.start(accelerator, cfg)  # log.report_to: TensorBoard, wandb, ... (RUN/metrics.jsonl always)
    frozen_dtype = FROZEN_DTYPES[cfg.train.mixed_precision]
    with accelerator.main_process_first():
        model_path = paths.model_folder(cfg)
        backbone = load_backbone(model_path, single_file=cfg.model.single_file, motion_adapter=cfg.model.motion_adapter,
                                 num_frames=cfg.data.num_frames, prediction_type=cfg.model.prediction_type,
                                 device=accelerator.device, frozen_dtype=torch.float32)
        dataset, data_summary = open_dataset(cfg, backbone, progress=progress and is_main)
    if frozen_dtype != torch.float32:  # encoders only run for the null prompt now; keep them small
        for m in backbone.text_encoders:
            m.to(dtype=frozen_dtype)
    params, optimizer = setup_policy(backbone, cfg.train, frozen_dtype=frozen_dtype, shard=sharded)
    backbone.compile(cfg.train.compile)
    lr_scheduler = get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=cfg.train.lr_warmup_steps)
    if sharded:  # already sharded in place: accelerate must not wrap it in data parallel too
        backbone.train_unet = backbone.unet
        optimizer, lr_scheduler = accelerator.prepare(optimizer, lr_scheduler)
    else:
        backbone.train_unet, optimizer, lr_scheduler = accelerator.prepare(backbone.unet, optimizer, lr_scheduler)
    backbone.unet.train()
    ema = EMAModel(params, decay=cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None

    b, accum = cfg.train.batch_size, cfg.train.grad_accum
    effective = b * world * accum
    order = BatchOrder(len(dataset), effective, cfg.seed)
    pool = ReferencePool(seed=cfg.seed, folder=run.pool, storage=cfg.pool.storage)
    start, reference, bad_streak, bad_total = 0, None, 0, 0
    checkpoints = complete_checkpoints(run.path) if cfg.resume else []
    if checkpoints:
        ckpt = load_checkpoint(checkpoints[-1])
        state = ckpt["state"]
        if state.get("sharded", False) != sharded:
            raise SeppoError(f"{checkpoints[-1]} was written {'with' if state.get('sharded') else 'without'} FSDP "
                             "sharding: resume it with the same train.sharding and process count")
        backbone.load_trainable_state(ckpt["weights"])
        if sharded:
            load_optimizer_state(backbone.unet, optimizer.optimizer, ckpt["optimizer"])  # accelerate's wrapper unwrapped
        else:
            optimizer.load_state_dict(ckpt["optimizer"])
        lr_scheduler.load_state_dict(ckpt["scheduler"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
            if sharded:
                shard_ema(ema, params)
        pool.load_state_dict(state["pool"])
        order.load_state_dict(state["order"])
        start, reference = state["step"], state["reference"]
        bad_streak, bad_total = state["bad_streak"], state["bad_total"]
        if reference is not None:
            _load_reference(backbone, pool, reference, cfg)
        if is_main:
            run.truncate_metrics(start)
            print(f"resuming {run.path} from update {start}")
    else:
        pool.append(backbone.trainable_state())  # θ_0
        if cfg.resume and is_main:  # killed before its first complete checkpoint: start over
            run.truncate_metrics(0)
            print(f"no complete checkpoint in {run.checkpoints}: starting {run.path} from update 0")
    if is_main:
        print(f"data: {data_summary}")
        print(f"{cfg.method}: K={cfg.train.iterations} × U={cfg.train.updates_per_iteration} updates, effective batch "
              f"{effective} ({world} process(es) × {b} × {accum} accumulation); reference snapshot "
              f"{pool.bytes_per_snapshot() / 2**20:.1f} MiB each, storage {cfg.pool.storage}")
        if sharded:
            print(f"train.sharding fsdp: the policy's weights, gradients and optimizer state sharded over {world} "
                  "processes (FSDP2); the reference stays whole on each")
    U, total = cfg.train.updates_per_iteration, cfg.total_updates
    bar = tqdm(total=total, initial=start, desc=cfg.method, disable=not (progress and is_main), unit="update")

    # A stuck collective ends within its timeout; the slack after it (at most 30 s) is for teardown.
    timeout = cfg.train.collective_timeout
    with StopFlag() as stop, LauncherWatch(grace=timeout + min(30, timeout)):
        for step in range(start, total):
            iteration = step // U  # 0-based; the paper's k = iteration + 1
            # ─── draw the reference: θ_j with j over the pool P = [θ_0 .. θ_k−1] ───
            if cfg.reference is not None and (step % U == 0 and cfg.redraw == "iteration" or cfg.redraw == "update"
                                              or reference is None):
                reference = pool.draw(cfg.reference)
                _load_reference(backbone, pool, reference, cfg)

            # ─── one optimizer update over `accum` micro-batches ───
            logged = (step + 1) % cfg.log.every == 0
            global_indices = order.next_global_indices()
            finite, metrics, timings = one_update(accelerator, cfg, backbone, dataset, params, optimizer, lr_scheduler,
                                                  ema, step, global_indices, logged=logged)
            if finite:
                bad_streak = 0
            else:
                bad_streak, bad_total = bad_streak + 1, bad_total + 1

            # ─── snapshot θ_k at the end of iteration k ───
            if (step + 1) % U == 0:
                pool.append(backbone.trainable_state())
            # ─── log ───
            if is_main and logged:
                row = {"step": step + 1, "iteration": iteration + 1, "reference": reference,
                       "lr": lr_scheduler.get_last_lr()[0], **metrics, "skipped": not finite, "bad_steps": bad_total,
                       "time_generate": round(timings["generate"], 4), "time_rest": round(timings["rest"], 4)}
                run.log(row)
                accelerator.log(trackers.scalars(row), step=row["step"])
                bar.set_postfix({k: f"{row[k]:.3g}" for k in ("loss", "flip_rate", "implicit_acc") if k in row})
            bar.update(1)
            # ─── checkpoint ───
            last = step + 1 == total
            every = cfg.checkpoints.every and (step + 1) % cfg.checkpoints.every == 0
            if (stop.requested and not last) or (every and not last):
                _checkpoint(accelerator, run, cfg, backbone, optimizer, lr_scheduler, pool, order, step + 1,
                            reference, bad_streak, bad_total, ema, sharded=sharded)
            if bad_streak >= cfg.train.max_bad_steps:
                raise SeppoError(f"{bad_streak} consecutive updates had a non-finite loss or gradient (last at update "
                                 f"{step + 1}); stopping. The last checkpoint in {run.checkpoints} is intact")
            if stop.requested and not last:
                bar.close()
                print(f"stopped after update {step + 1}; continue with: seppo train {run.config_path} "
                      f"resume=true", file=sys.stderr)
                raise SystemExit(EXIT_INTERRUPTED)
    bar.close()

    # ─── export the final model θ_K ───
    if ema is not None and (is_main or sharded):  # the export holds the EMA weights; the pool keeps the raw θ_k
        ema.copy_to(params)
    final_unet = _gathered_policy(backbone, is_main) if sharded else backbone.unet
    if is_main:
        export_final(backbone, model_path, run.path, cfg, data_summary=data_summary.as_dict(), unet=final_unet)
        run.write_summary({"method": cfg.method, "seppo_version": __version__, "updates": total, "effective_batch": effective,
                           "wall_seconds": round(time.time() - wall0, 1), "data": data_summary.as_dict(),
                           "reference_draws": pool.draws, "bad_steps": bad_total})
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return run.path


def _load_reference(backbone, pool: ReferencePool, reference: int, cfg: Config) -> None:
    """Pool entry `reference` into the reference model, with its digest when samples are shared."""
    state = pool.state(reference)
    backbone.load_reference_state(state, digest=shared_samples.weights_digest(state) if cfg.sampler.share_dir else None)


def one_update(accelerator, cfg: Config, backbone, dataset, params, optimizer, lr_scheduler, ema, step: int,
               global_indices: list[int], *, logged: bool) -> tuple[bool, dict[str, float], dict[str, float]]:
    """Gradients over `accum` micro-batches, one host sync, then the optimizer step if every
    process's loss and gradients are finite. Returns (finite, metrics if `logged`, timings)."""
    world, rank, b, accum = accelerator.num_processes, accelerator.process_index, cfg.train.batch_size, cfg.train.grad_accum
    effective = b * world * accum
    flips = flip_mask(cfg.seed, step, global_indices) if cfg.data.hflip else [False] * len(global_indices)
    timings = {"generate": 0.0, "rest": 0.0}
    sums: dict[str, torch.Tensor] = {}
    for micro in range(accum):
        window = slice(micro * world * b, (micro + 1) * world * b)
        keys = [step * effective + micro * world * b + rank * b + i for i in range(b)]  # global sample indices
        batch = dataset.get(shard(global_indices[window], rank, world), shard(flips[window], rank, world))
        sync = accelerator.no_sync(backbone.train_unet) if micro < accum - 1 else contextlib.nullcontext()
        with sync, accelerator.autocast():
            loss, metrics = update_losses(backbone, cfg, batch, keys, step, timings)
            accelerator.backward(loss / accum)
        for k, v in metrics.items():  # float64, as the logged numbers have always been summed
            sums[k] = sums.get(k, 0.0) + v.double() / accum
    finite, metrics = apply_gradients(accelerator, cfg.train.max_grad_norm, sums, params, optimizer, lr_scheduler, ema,
                                      logged=logged)
    return finite, metrics, timings


def apply_gradients(accelerator, max_grad_norm: float, sums: dict[str, torch.Tensor], params, optimizer, lr_scheduler,
                    ema, *, logged: bool) -> tuple[bool, dict[str, float]]:
    """Clip, check, step: the optimizer step only if loss and gradients are finite on every process.

    With fp16 the clip unscales the gradients through accelerate's GradScaler. A skipped update
    still closes the scaler's step with `update()`: it backs the loss scale off, as accelerate's
    own `optimizer.step()` does on an overflow, and the next clip may unscale again."""
    # One fused norm both clips and tells whether every gradient is finite.
    norm = accelerator.clip_grad_norm_(params, max_grad_norm if max_grad_norm > 0 else math.inf)
    finite, metrics = _sync(accelerator, sums, norm, params, logged)
    if finite:
        optimizer.step()
        lr_scheduler.step()
        if ema is not None:
            ema.step(params)
    elif accelerator.scaler is not None:
        accelerator.scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return finite, metrics


# --------------------------------------------------------------------------- small helpers


def _sync(accelerator, sums: dict[str, torch.Tensor], grad_norm, params, logged: bool) -> tuple[bool, dict[str, float]]:
    """The update's one host sync: whether loss and gradients are finite on every process, and,
    on logged updates, the metrics averaged over processes, reduced together in one tensor.

    The gradient norm is non-finite iff some gradient is; DeepSpeed may return no norm, and
    the gradients are then checked on the device, one reduction each."""
    if grad_norm is None:
        grads = [torch.isfinite(p.grad).all() for p in params if p.grad is not None]
        grads_ok = torch.stack(grads).all() if grads else torch.tensor(True)
    else:
        grads_ok = torch.isfinite(torch.as_tensor(whole(grad_norm))).all()  # FSDP: a replicated DTensor
    device = accelerator.device
    flag = (torch.isfinite(sums["loss"]).to(device) & grads_ok.to(device)).double()
    names = list(sums) if logged else []
    values = torch.stack([flag, *(sums[k].to(device) for k in names)])  # (1 + metrics,)
    values = accelerator.reduce(values, reduction="sum").tolist()
    world = accelerator.num_processes
    return values[0] == world, {k: v / world for k, v in zip(names, values[1:])}


def _checkpoint(accelerator, run: RunDir, cfg, backbone, optimizer, lr_scheduler, pool, order, step, reference,
                bad_streak, bad_total, ema=None, *, sharded: bool = False) -> None:
    # Under FSDP each is gathered whole from the shards: a collective, so every process takes part.
    weights = backbone.trainable_state() if sharded or accelerator.is_main_process else None
    if sharded:
        optimizer = whole_optimizer_state(backbone.unet, optimizer.optimizer)  # accelerate's wrapper unwrapped
        ema = whole_ema_state(ema) if ema is not None else None
    if accelerator.is_main_process:
        state = {"pool": pool.state_dict(), "order": order.state_dict(), "reference": reference,
                 "bad_streak": bad_streak, "bad_total": bad_total, "config": to_dict(cfg),
                 **({"sharded": True} if sharded else {})}
        save_checkpoint(run.path, step, weights=weights, optimizer=optimizer, scheduler=lr_scheduler,
                        state=state, keep_last=cfg.checkpoints.keep_last, ema=ema)
    accelerator.wait_for_everyone()


def _gathered_policy(backbone, is_main: bool) -> torch.nn.Module:
    """θ_K whole, as an unsharded module for the export: gathered on every process, and put by
    the main one into the reference's whole copy (no longer needed), in float32 as it trained."""
    state = backbone.trainable_state()
    if is_main:
        with expected_warnings_silenced():
            backbone.reference_unet.to(torch.float32)
        backbone.load_reference_state(state)
    return backbone.reference_unet
