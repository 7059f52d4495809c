#!/usr/bin/env bash
# Modern teachers (fixtures saved by the wheel's torch): a ViT's token sequence with and
# without a class token, a Swin's channels-last map, ConvNeXt's channels-first map — each read in
# its layout, recorded in config.json — and a shape that fits two layouts, refused until declared.
set -u
AMALGAM=$(realpath "${1:?usage: modern_models_test.sh path/to/amalgam}")
source "$(dirname "$0")/lib.sh"
make_fixtures make_modern_models.py
cd "$W" || exit 1
A="$AMALGAM --quiet"

# recorded NAME RUN LAYOUT C H W: the first teacher's entry in RUN/config.json.
recorded() {
  if "$PY" - "$2/config.json" "$3" "$4" "$5" "$6" <<'PY'; then pass "$1"; else fail "$1"; fi
import json, sys
t = json.load(open(sys.argv[1]))["networks"]["teachers"][0]
want = [int(v) for v in sys.argv[3:6]]
assert t["layout"] == sys.argv[2] and t["feature_shape"] == want, t
PY
}

ok "inspect a ViT" $A inspect vit.pt
grep -q "encoder (.*)  \[1, 17, 32\]  -> tokens+cls, features \[32, 4, 4\]" out &&
  pass "inspect shows the layout and the feature shape" || fail "inspect layout line: $(grep 'encoder ' out)"

cp vit.pt vit2.pt  # no sidecar: the size comes from the options
bad "a forward that fails names the file and the cause" \
  "vit2.pt: forward fails on a 3x28x28 input (check --input-size and --channels): " \
  $A inspect vit2.pt --input-size 28
grep -q "failed in the TorchScript interpreter" err && fail "the interpreter's cause is shown" ||
  pass "the interpreter's cause is shown: $(tail -c 80 err)"

# A second teacher beside each: the CNN with its layout declared.
TRAIN="--teacher cube.pt:body@nchw --data images --epochs 1 --batch-size 8"
for case in "vit encoder tokens+cls" "vit_nocls encoder tokens" "swin features nhwc" \
            "convnext features nchw"; do
  set -- $case
  ok "amalgamate a $1 teacher" $A amalgamate --teacher "$1.pt:$2" $TRAIN --out "run_$1" \
    --export "run_$1.pt"
  recorded "$1 read as $3, features [32, 4, 4]" "run_$1" "$3" 32 4 4
done

TRAIN="--teacher convnext.pt:features --data images --epochs 1 --batch-size 8"
bad "a shape two layouts fit is refused" "could be nchw or nhwc" $A amalgamate \
  --teacher cube.pt:body $TRAIN --out x1
grep -q "tokens+cls" err && pass "the refusal lists the layouts" || fail "layouts listed"
absent "nothing written after the refusal" x1
ok "a layout after the layer settles it" $A amalgamate --teacher cube.pt:body@nhwc $TRAIN --out cube
recorded "the declared layout is recorded" cube nhwc 8 8 8
cp cube.pt cube2.pt && printf '{"input_size": 32, "layout": "nchw"}' >cube2.json
ok "or the sidecar's layout" $A amalgamate --teacher cube2.pt:body $TRAIN --out cube2
recorded "the sidecar's layout is recorded" cube2 nchw 8 8 8
bad "a layout the shape cannot have" "cannot be read as tokens" $A amalgamate \
  --teacher convnext.pt:features@tokens --data images --epochs 1 --out x2
bad "an unknown layout" "feature layout: expected auto, nchw, nhwc, tokens, tokens+cls or vector, got 'nhcw'; did you mean nchw?" $A amalgamate \
  --teacher cube.pt:body@nhcw --data images --epochs 1 --out x3

summary modern_models
