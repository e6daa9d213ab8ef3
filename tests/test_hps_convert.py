"""seppo.judges.hps: an open_clip-layout state dict, written by hand here, converts to a
transformers CLIPModel that computes the same features as open_clip's own forward pass
(re-implemented below in a few lines, since open_clip itself needs torchvision)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPConfig, CLIPModel

from seppo.errors import ModelError
from seppo.judges.hps import load_hps_model, openclip_to_transformers, read_openclip_state_dict, vit_h14_config


def tiny_config(vocab_size: int = 50, bos: int = 48, eos: int = 49, pad: int = 0) -> CLIPConfig:
    """Different widths per tower, so a tensor put in the wrong tower cannot load."""
    return CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=32, hidden_act="gelu",
            bos_token_id=bos, eos_token_id=eos, pad_token_id=pad,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            image_size=16, patch_size=4, hidden_act="gelu",
        ),
        projection_dim=16,
    )


def _resblock(prefix: str, width: int, mlp: int, g: torch.Generator) -> dict:
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.1  # noqa: E731
    return {
        f"{prefix}.ln_1.weight": 1 + r(width), f"{prefix}.ln_1.bias": r(width),
        f"{prefix}.attn.in_proj_weight": r(3 * width, width), f"{prefix}.attn.in_proj_bias": r(3 * width),
        f"{prefix}.attn.out_proj.weight": r(width, width), f"{prefix}.attn.out_proj.bias": r(width),
        f"{prefix}.ln_2.weight": 1 + r(width), f"{prefix}.ln_2.bias": r(width),
        f"{prefix}.mlp.c_fc.weight": r(mlp, width), f"{prefix}.mlp.c_fc.bias": r(mlp),
        f"{prefix}.mlp.c_proj.weight": r(width, mlp), f"{prefix}.mlp.c_proj.bias": r(width),
    }


def random_openclip_state_dict(config: CLIPConfig, seed: int = 0) -> dict:
    """An open_clip `CLIP` state dict with `config`'s geometry and random tensors."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.1  # noqa: E731
    v, t, dim = config.vision_config, config.text_config, config.projection_dim
    grid = v.image_size // v.patch_size
    sd = {
        "visual.conv1.weight": r(v.hidden_size, 3, v.patch_size, v.patch_size),
        "visual.class_embedding": r(v.hidden_size),
        "visual.positional_embedding": r(grid * grid + 1, v.hidden_size),
        "visual.ln_pre.weight": 1 + r(v.hidden_size), "visual.ln_pre.bias": r(v.hidden_size),
        "visual.ln_post.weight": 1 + r(v.hidden_size), "visual.ln_post.bias": r(v.hidden_size),
        "visual.proj": r(v.hidden_size, dim),
        "token_embedding.weight": r(t.vocab_size, t.hidden_size),
        "positional_embedding": r(t.max_position_embeddings, t.hidden_size),
        "ln_final.weight": 1 + r(t.hidden_size), "ln_final.bias": r(t.hidden_size),
        "text_projection": r(t.hidden_size, dim),
        "logit_scale": torch.tensor(4.6052),
        "attn_mask": torch.full((t.max_position_embeddings,) * 2, float("-inf")).triu(1),
    }
    for i in range(v.num_hidden_layers):
        sd |= _resblock(f"visual.transformer.resblocks.{i}", v.hidden_size, v.intermediate_size, g)
    for i in range(t.num_hidden_layers):
        sd |= _resblock(f"transformer.resblocks.{i}", t.hidden_size, t.intermediate_size, g)
    return sd


def _openclip_blocks(x, sd, prefix, layers, heads, attn_mask=None):
    """open_clip's ResidualAttentionBlock: x += attn(ln_1 x); x += c_proj(gelu(c_fc(ln_2 x)))."""
    width = x.shape[-1]
    for i in range(layers):
        p = f"{prefix}.resblocks.{i}"
        attn = nn.MultiheadAttention(width, heads, batch_first=True)
        attn.load_state_dict({
            "in_proj_weight": sd[f"{p}.attn.in_proj_weight"], "in_proj_bias": sd[f"{p}.attn.in_proj_bias"],
            "out_proj.weight": sd[f"{p}.attn.out_proj.weight"], "out_proj.bias": sd[f"{p}.attn.out_proj.bias"],
        })
        h = F.layer_norm(x, (width,), sd[f"{p}.ln_1.weight"], sd[f"{p}.ln_1.bias"])
        x = x + attn(h, h, h, need_weights=False, attn_mask=attn_mask)[0]
        h = F.layer_norm(x, (width,), sd[f"{p}.ln_2.weight"], sd[f"{p}.ln_2.bias"])
        h = F.gelu(F.linear(h, sd[f"{p}.mlp.c_fc.weight"], sd[f"{p}.mlp.c_fc.bias"]))
        x = x + F.linear(h, sd[f"{p}.mlp.c_proj.weight"], sd[f"{p}.mlp.c_proj.bias"])
    return x


def openclip_encode_image(sd, pixels, config):
    """open_clip VisionTransformer.forward: patches, [cls; patches] + pos, ln_pre, blocks, ln_post(cls) @ proj."""
    v = config.vision_config
    x = F.conv2d(pixels, sd["visual.conv1.weight"], stride=v.patch_size)  # (B, W, g, g)
    x = x.flatten(2).transpose(1, 2)  # (B, g², W)
    cls = sd["visual.class_embedding"].expand(x.shape[0], 1, -1)  # (B, 1, W)
    x = torch.cat([cls, x], dim=1) + sd["visual.positional_embedding"]  # (B, 1 + g², W)
    x = F.layer_norm(x, (v.hidden_size,), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"])
    x = _openclip_blocks(x, sd, "visual.transformer", v.num_hidden_layers, v.num_attention_heads)
    x = F.layer_norm(x[:, 0], (v.hidden_size,), sd["visual.ln_post.weight"], sd["visual.ln_post.bias"])
    return x @ sd["visual.proj"]


def openclip_encode_text(sd, tokens, config):
    """open_clip CLIP.encode_text: embed + pos, causal blocks, ln_final, take the argmax token, @ text_projection."""
    t = config.text_config
    x = sd["token_embedding.weight"][tokens] + sd["positional_embedding"][: tokens.shape[1]]
    causal = torch.full((tokens.shape[1],) * 2, float("-inf")).triu(1)
    x = _openclip_blocks(x, sd, "transformer", t.num_hidden_layers, t.num_attention_heads, causal)
    x = F.layer_norm(x, (t.hidden_size,), sd["ln_final.weight"], sd["ln_final.bias"])
    return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ sd["text_projection"]


@pytest.fixture(scope="module")
def converted():
    config = tiny_config()
    sd = random_openclip_state_dict(config)
    model = CLIPModel(config).eval()
    model.load_state_dict(openclip_to_transformers(sd, config), strict=True)
    return config, sd, model


def _pooled(output):
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def test_converted_model_matches_openclip_image_forward(converted):
    config, sd, model = converted
    pixels = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = _pooled(model.get_image_features(pixel_values=pixels))
        reference = openclip_encode_image(sd, pixels, config)
    assert ours.shape == (3, 16)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_converted_model_matches_openclip_text_forward(converted):
    config, sd, model = converted
    # open_clip pads with 0 after the end-of-text token (the largest id, 49 here).
    tokens = torch.tensor([[48, 5, 17, 30, 49, 0, 0, 0], [48, 3, 49, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        ours = _pooled(model.get_text_features(input_ids=tokens))
        reference = openclip_encode_text(sd, tokens, config)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours[0], ours[1])


def test_projections_are_transposed_and_in_proj_split(converted):
    _, sd, model = converted
    state = model.state_dict()
    assert torch.equal(state["visual_projection.weight"], sd["visual.proj"].t())
    assert torch.equal(state["text_projection.weight"], sd["text_projection"].t())
    w = sd["visual.transformer.resblocks.1.attn.in_proj_weight"]
    assert torch.equal(state["vision_model.encoder.layers.1.self_attn.k_proj.weight"], w[32:64])
    assert torch.equal(state["logit_scale"], sd["logit_scale"])


def test_checkpoint_file_wrapped_with_module_prefix(tmp_path, converted):
    config, sd, model = converted
    path = tmp_path / "HPS_v2_compressed.pt"
    torch.save({"state_dict": {f"module.{k}": v.half() for k, v in sd.items()}}, path)
    assert set(read_openclip_state_dict(path)) == set(sd)
    loaded = load_hps_model(path, config)
    torch.testing.assert_close(
        loaded.state_dict()["text_projection.weight"], sd["text_projection"].t().half().float()
    )


def test_checkpoint_errors_name_the_file(tmp_path, converted):
    config, sd, _ = converted
    with pytest.raises(ModelError, match="not found: .*missing.pt"):
        load_hps_model(tmp_path / "missing.pt", config)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read HPS checkpoint .*junk.pt"):
        load_hps_model(junk, config)
    extra = tmp_path / "extra.pt"
    torch.save({k: v for k, v in sd.items() if k != "ln_final.bias"} | {"visual.head.weight": torch.zeros(1)}, extra)
    with pytest.raises(ModelError, match=r"extra.pt does not fit.*final_layer_norm.bias.*visual.head.weight"):
        load_hps_model(extra, config)
    other = tiny_config()
    other.vision_config.num_hidden_layers = 3
    with pytest.raises(ModelError, match="2 vision_model blocks, config expects 3"):
        openclip_to_transformers(sd, other)
    wide = tmp_path / "wide.pt"
    torch.save(random_openclip_state_dict(tiny_config(vocab_size=60, bos=58, eos=59)), wide)
    with pytest.raises(ModelError, match="wide.pt does not fit"):
        load_hps_model(wide, config)


def test_vit_h14_geometry():
    config = vit_h14_config()
    v, t = config.vision_config, config.text_config
    assert (v.num_hidden_layers, v.hidden_size, v.num_attention_heads, v.patch_size, v.image_size) == (32, 1280, 16, 14, 224)
    assert (v.intermediate_size, v.hidden_act, t.hidden_act) == (5120, "gelu", "gelu")
    assert (t.num_hidden_layers, t.hidden_size, t.num_attention_heads, t.intermediate_size) == (24, 1024, 16, 4096)
    assert (t.vocab_size, t.max_position_embeddings, t.eos_token_id, config.projection_dim) == (49408, 77, 49407, 1024)
