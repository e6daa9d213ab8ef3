"""Check seppo's HPSv2 conversion against open_clip itself.

Needs `open_clip_torch` (and so torchvision), which seppo does not install; run it on a
machine that has them. It builds open_clip's ViT-H-14 (random weights, or an HPSv2
checkpoint with --checkpoint), converts the state dict with `seppo.judges.hps`, and prints
the largest absolute difference between open_clip's and the transformers CLIPModel's image
and text features on random pixels and real prompts.

    python scripts/check_hps_against_openclip.py [--checkpoint HPS_v2_compressed.pt] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="HPS_v2(.1)_compressed.pt; random weights if omitted")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="max abs feature difference allowed")
    args = parser.parse_args()

    try:
        import open_clip  # here, not at the top: the rest of seppo never needs it
    except ImportError:
        print("open_clip is not importable here; install open_clip_torch (with torchvision) to run this check")
        return 2

    from seppo.judges.hps import openclip_to_transformers, read_openclip_state_dict, vit_h14_config

    torch.manual_seed(0)
    reference = open_clip.create_model("ViT-H-14", pretrained=None)  # exact GELU, as HPSv2 builds it
    if args.checkpoint:
        reference.load_state_dict(read_openclip_state_dict(args.checkpoint))
    reference = reference.to(args.device).eval()

    from transformers import CLIPModel

    config = vit_h14_config()
    ours = CLIPModel(config)
    ours.load_state_dict(openclip_to_transformers(reference.state_dict(), config), strict=True)
    ours = ours.to(args.device).eval()

    pixels = torch.randn(2, 3, 224, 224, device=args.device)
    tokens = open_clip.get_tokenizer("ViT-H-14")(["a photo of a cat", "an oil painting of a lighthouse at dusk"])
    tokens = tokens.to(args.device)  # (2, 77), 0-padded after the end-of-text token 49407
    with torch.no_grad():
        pooled = lambda out: out if isinstance(out, torch.Tensor) else out.pooler_output  # noqa: E731
        image_diff = (reference.encode_image(pixels) - pooled(ours.get_image_features(pixel_values=pixels))).abs().max()
        text_diff = (reference.encode_text(tokens) - pooled(ours.get_text_features(input_ids=tokens))).abs().max()
    print(f"max |image feature diff| = {image_diff.item():.3g}")
    print(f"max |text feature diff|  = {text_diff.item():.3g}")
    ok = max(image_diff.item(), text_diff.item()) <= args.tolerance
    print("OK" if ok else f"FAIL: above tolerance {args.tolerance}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
