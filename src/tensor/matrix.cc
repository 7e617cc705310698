// Matrix views: sizes and the row and column slices of every stored form.
#include "tensor/matrix.h"

#include "base/check.h"
#include "tensor/quant.h"

namespace meshlm {

Matrix ContiguousMatrix(const uint8_t* data, DType dtype, std::optional<QuantType> quant,
                        size_t rows, size_t cols) {
  Matrix m;
  m.quant = quant;
  m.dtype = dtype;
  m.data = data;
  m.rows = rows;
  m.cols = cols;
  m.row_stride = RowBytes(m);
  return m;
}

size_t RowBytes(const Matrix& m) {
  return m.quant ? QuantRowBytes(*m.quant, m.cols) : m.cols * DTypeSize(m.dtype);
}

size_t MatrixBytes(const Matrix& m) {
  if (!m.quant) return m.rows * RowBytes(m);
  if (m.packed) return m.rows / kPackRows * PackedGroupBytes(*m.quant, m.cols);
  size_t bytes = m.rows * RowBytes(m);
  if (IsMlx(*m.quant)) bytes += 2 * m.rows * (m.cols / m.group_size) * DTypeSize(m.scale_dtype);
  return bytes;
}

Matrix SliceRows(const Matrix& m, size_t row0, size_t nrows) {
  MESHLM_CHECK(row0 + nrows <= m.rows, "rows [{}, {}) beyond {}", row0, row0 + nrows, m.rows);
  Matrix s = m;
  s.rows = nrows;
  if (m.packed) {
    MESHLM_CHECK(row0 % kPackRows == 0 && nrows % kPackRows == 0,
                 "rows [{}, {}) of a packed matrix do not fall on groups of {}", row0, row0 + nrows,
                 kPackRows);
    s.data = m.data + row0 / kPackRows * m.row_stride;
    return s;
  }
  s.data = m.data + row0 * m.row_stride;
  if (m.quant && IsMlx(*m.quant)) {
    const size_t off = row0 * m.scale_stride * DTypeSize(m.scale_dtype);
    s.scales = static_cast<const uint8_t*>(m.scales) + off;
    s.biases = static_cast<const uint8_t*>(m.biases) + off;
  }
  return s;
}

Result<Matrix> SliceColumns(const Matrix& m, size_t col0, size_t ncols) {
  if (col0 + ncols > m.cols) {
    return Error("[matrix] columns [{}, {}) beyond {}", col0, col0 + ncols, m.cols);
  }
  Matrix s = m;
  s.cols = ncols;
  if (!m.quant) {
    s.data = m.data + col0 * DTypeSize(m.dtype);
    return s;
  }
  const QuantType t = *m.quant;
  if (m.packed) return Error("[quant] a packed {} matrix has no column slices", QuantTypeName(t));
  const size_t unit = IsMlx(t) ? m.group_size : QuantBlockElems(t);
  if (col0 % unit != 0 || ncols % unit != 0) {
    return Error(
        "[quant] columns [{}, {}) of a {} matrix of {} columns do not fall on its "
        "{}-weight {} boundaries; choose a split into multiples of {}",
        col0, col0 + ncols, QuantTypeName(t), m.cols, unit, IsMlx(t) ? "group" : "block", unit);
  }
  s.data = m.data + col0 / QuantBlockElems(t) * QuantBlockBytes(t);
  if (IsMlx(t)) {
    const size_t es = DTypeSize(m.scale_dtype), g0 = col0 / m.group_size;
    s.scales = static_cast<const uint8_t*>(m.scales) + g0 * es;
    s.biases = static_cast<const uint8_t*>(m.biases) + g0 * es;
  }
  return s;
}

}  // namespace meshlm
