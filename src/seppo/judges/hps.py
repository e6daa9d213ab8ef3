"""HPSv2 weights: open_clip ViT-H-14 state dicts as a transformers `CLIPModel`.

HPSv2 (and v2.1) is open_clip's ViT-H-14 fine-tuned on human preference pairs and
shipped as `HPS_v2_compressed.pt` / `HPS_v2.1_compressed.pt`: an open_clip state dict,
possibly wrapped in {"state_dict": ...} and with a DataParallel "module." prefix. The two
towers are the same networks in both libraries, only named differently, so we rename
and reshape the tensors instead of depending on open_clip (which needs torchvision).

What changes between the layouts (open_clip → transformers):

| open_clip                                  | transformers CLIPModel                         |
|--------------------------------------------|------------------------------------------------|
| visual.conv1.weight                        | vision_model.embeddings.patch_embedding.weight |
| visual.class_embedding                     | vision_model.embeddings.class_embedding        |
| visual.positional_embedding                | vision_model.embeddings.position_embedding.weight |
| visual.ln_pre / visual.ln_post             | vision_model.pre_layrnorm / post_layernorm     |
| visual.proj (width, D), used as x @ proj   | visual_projection.weight (D, width): transposed|
| token_embedding / positional_embedding     | text_model.embeddings.token_/position_embedding|
| ln_final                                   | text_model.final_layer_norm                    |
| text_projection (width, D)                 | text_projection.weight (D, width): transposed  |
| *.resblocks.N.attn.in_proj_{weight,bias}   | *.layers.N.self_attn.{q,k,v}_proj: split in 3  |
| *.resblocks.N.{ln_1, ln_2}                 | *.layers.N.{layer_norm1, layer_norm2}          |
| *.resblocks.N.mlp.{c_fc, c_proj}           | *.layers.N.mlp.{fc1, fc2}                      |

`scripts/check_hps_against_openclip.py` compares the result with open_clip itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel

from seppo.errors import ModelError

# Renames inside one residual block; in_proj is handled apart because it splits in three.
_BLOCK_RENAMES = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}
# Renames outside the blocks; the projections are handled apart because they transpose.
_RENAMES = {
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "logit_scale": "logit_scale",
}
_TRANSPOSED = {"visual.proj": "visual_projection.weight", "text_projection": "text_projection.weight"}
_BLOCK = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.(.+)$")


def vit_h14_config() -> CLIPConfig:
    """open_clip's ViT-H-14 geometry (`ViT-H-14.json`), which HPSv2 and v2.1 use.

    open_clip builds this model with exact GELU (only the OpenAI models use QuickGELU), and
    the text tower pools at the end-of-text token 49407, the largest id, like open_clip's
    `argmax` over token ids.
    """
    return CLIPConfig(
        text_config=dict(
            vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
            num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu",
            bos_token_id=49406, eos_token_id=49407, pad_token_id=0,
        ),
        vision_config=dict(
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
            patch_size=14, image_size=224, hidden_act="gelu",
        ),
        projection_dim=1024,
    )


def openclip_to_transformers(state_dict: dict[str, torch.Tensor], config: CLIPConfig) -> dict:
    """Rename an open_clip CLIP state dict to transformers `CLIPModel` keys.

    Keys that are not recognised pass through unchanged, so loading reports them as
    unexpected; open_clip's causal `attn_mask` buffer is dropped (transformers rebuilds it).
    Raises `ModelError` when the number of residual blocks differs from `config`.
    """
    out: dict[str, torch.Tensor] = {}
    layers = {"vision_model": set(), "text_model": set()}
    for key, value in state_dict.items():
        if key == "attn_mask" or key.endswith(".attn_mask"):
            continue
        if key in _RENAMES:
            out[_RENAMES[key]] = value
        elif key in _TRANSPOSED:
            out[_TRANSPOSED[key]] = value.t().contiguous()
        elif match := _BLOCK.match(key):
            tower = "vision_model" if match.group(1) else "text_model"
            index, rest = int(match.group(2)), match.group(3)
            layers[tower].add(index)
            out.update(_block_tensors(f"{tower}.encoder.layers.{index}", rest, key, value))
        else:
            out[key] = value
    expected = {
        "vision_model": config.vision_config.num_hidden_layers,
        "text_model": config.text_config.num_hidden_layers,
    }
    for tower, count in expected.items():
        if len(layers[tower]) != count:
            raise ModelError(
                f"open_clip state dict has {len(layers[tower])} {tower} blocks, config expects {count}"
            )
    return out


def _block_tensors(prefix: str, rest: str, key: str, value: torch.Tensor) -> dict:
    """One open_clip residual-block tensor as transformers tensors (in_proj splits into q, k, v)."""
    if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
        kind = rest.removeprefix("attn.in_proj_")
        # nn.MultiheadAttention stacks [W_q; W_k; W_v] on dim 0: (3·width, ...) -> 3 × (width, ...)
        q, k, v = value.chunk(3, dim=0)
        return {f"{prefix}.self_attn.{name}_proj.{kind}": t for name, t in zip("qkv", (q, k, v))}
    for old, new in _BLOCK_RENAMES.items():
        if rest.startswith(old + "."):
            return {f"{prefix}.{new}{rest[len(old):]}": value}
    return {key: value}  # unknown: reported as unexpected when loading


def read_openclip_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an open_clip checkpoint file, unwrapping {"state_dict": ...} and "module." prefixes."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"HPS checkpoint not found: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and unpickler errors all mean "not a checkpoint"
        raise ModelError(f"cannot read HPS checkpoint {path}: {str(err).splitlines()[0]}") from err
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ModelError(f"HPS checkpoint {path} does not hold a state dict of tensors")
    return {key.removeprefix("module."): value for key, value in raw.items()}


def load_hps_model(path: str | Path, config: CLIPConfig | None = None) -> CLIPModel:
    """Build a transformers `CLIPModel` from an open_clip (HPSv2) checkpoint file.

    `config` defaults to `vit_h14_config()`. Any missing or unexpected key, or a tensor of
    the wrong shape, is a `ModelError` naming the file.
    """
    config = config or vit_h14_config()
    converted = openclip_to_transformers(read_openclip_state_dict(path), config)
    model = CLIPModel(config)
    try:
        result = model.load_state_dict(converted, strict=False)
    except RuntimeError as err:  # shape mismatches
        detail = " ".join(str(err).split())[:300]
        raise ModelError(f"HPS checkpoint {path} does not fit the CLIP config: {detail}") from err
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(
            f"HPS checkpoint {path} does not fit the CLIP config: "
            f"missing {result.missing_keys[:3]} ({len(result.missing_keys)} in all), "
            f"unexpected {result.unexpected_keys[:3]} ({len(result.unexpected_keys)} in all)"
        )
    return model.eval()
