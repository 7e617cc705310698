// MLX quantized matrices: shape checks of weight, scales and biases, and their Matrix view.
#include "model/mlx_quant.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace meshlm::model {

Result<Matrix> GetMlxMatrix(const TensorStore& store, const TensorInfo& packed, int64_t rows,
                            int64_t cols) {
  const std::string& name = packed.name;
  const std::string suffix = ".weight";
  if (!name.ends_with(suffix)) {
    return Error("[model] tensor '{}' in '{}' has dtype U32 but is not a quantized weight", name,
                 packed.file);
  }
  const std::string module = name.substr(0, name.size() - suffix.size());
  MESHLM_ASSIGN_OR_RETURN(const TensorInfo* scales, store.Get(module + ".scales"));
  MESHLM_ASSIGN_OR_RETURN(const TensorInfo* biases, store.Get(module + ".biases"));
  return GetMlxMatrix(packed, *scales, *biases, rows, cols);
}

Result<Matrix> GetMlxMatrix(const TensorInfo& packed, const TensorInfo& scales_info,
                            const TensorInfo& biases_info, int64_t rows, int64_t cols) {
  const std::string& name = packed.name;
  const std::string module = name.substr(0, name.size() - std::string(".weight").size());
  const TensorInfo* scales = &scales_info;
  const TensorInfo* biases = &biases_info;
  // A row of cols weights packs into cols / 8 words at 4 bits, cols / 4 at 8 bits.
  const int64_t words = packed.shape.size() == 2 ? packed.shape[1] : 0;
  if (packed.shape.size() != 2 || packed.shape[0] != rows ||
      (words * 8 != cols && words * 4 != cols)) {
    return Error(
        "[model] quantized tensor '{}' in '{}' has shape [{}]; for [{}, {}] weights it "
        "must be [{}, {}] (4-bit) or [{}, {}] (8-bit)",
        name, packed.file, fmt::join(packed.shape, ", "), rows, cols, rows, cols / 8, rows,
        cols / 4);
  }
  const int bits = words * 8 == cols ? 4 : 8;
  if (scales->shape.size() != 2 || scales->shape[0] != rows || scales->shape[1] <= 0 ||
      cols % scales->shape[1] != 0 ||
      (cols / scales->shape[1] != 32 && cols / scales->shape[1] != 64 &&
       cols / scales->shape[1] != 128)) {
    return Error(
        "[model] '{}.scales' in '{}' has shape [{}], which does not match its weights "
        "[{}, {}]: expected [{}, {} / group size] with group size 32, 64 or 128",
        module, scales->file, fmt::join(scales->shape, ", "), rows, cols, rows, cols);
  }
  if (biases->shape != scales->shape || biases->dtype != scales->dtype) {
    return Error("[model] '{}.biases' in '{}' ({} [{}]) does not match '{}.scales' ({} [{}])",
                 module, biases->file, DTypeName(biases->dtype), fmt::join(biases->shape, ", "),
                 module, DTypeName(scales->dtype), fmt::join(scales->shape, ", "));
  }
  if (scales->dtype != DType::kF32 && scales->dtype != DType::kF16 &&
      scales->dtype != DType::kBF16) {
    return Error("[model] '{}.scales' in '{}' has dtype {}; supported: F32, F16, BF16", module,
                 scales->file, DTypeName(scales->dtype));
  }
  Matrix w =
      ContiguousMatrix(packed.data, DType::kU32, bits == 4 ? QuantType::kMlx4 : QuantType::kMlx8,
                       static_cast<size_t>(rows), static_cast<size_t>(cols));
  w.scales = scales->data;
  w.biases = biases->data;
  w.scale_dtype = scales->dtype;
  w.scale_stride = static_cast<size_t>(scales->shape[1]);
  w.group_size = static_cast<size_t>(cols) / w.scale_stride;
  return w;
}

}  // namespace meshlm::model
