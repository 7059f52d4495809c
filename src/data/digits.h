// Handwritten digits as a second real image domain: scikit-learn's copy of the UCI optical
// digits (1,797 images of 8x8, ink 0..16), which Debian's python3-sklearn ships.
#pragma once

#include <cstdint>
#include <string>

#include "data/dataset.h"

namespace amalgam {

/// Where Debian's python3-sklearn puts the digits table.
constexpr const char* kSklearnDigitsPath =
    "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";

/// Reads the digits table (gzipped or plain CSV, one image a row: 64 ink values 0..16, then the
/// digit 0..9) as grey uint8 images [N,1,size,size], upsampled bilinearly with ink scaled to
/// 0..255 (bright on dark, like the MNIST family), labels digit + `label_offset`. Throws Error
/// naming `path` and the line on a malformed row.
LabeledImages load_digits_csv(const std::string& path, int64_t size, int64_t label_offset);

}  // namespace amalgam
