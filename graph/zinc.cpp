#include "graph/zinc.h"

#include <cmath>
#include <cstring>

#include "core/check.h"
#include "graph/dataset_io.h"

namespace lapis {
namespace graph {
namespace {

constexpr const char* kOp = "load_zinc";
constexpr int64_t kAtomTypes = 28;
constexpr int64_t kBondTypes = 4;  // 0 = no bond (unused on sparse edges), 1..3

// Bounds-checked little-endian reader over the decompressed bundle.
class Cursor {
 public:
  Cursor(const std::string& bytes, const std::string& name) : bytes_(bytes), name_(name) {}
  const uint8_t* take(size_t n, const char* what) {
    LAPIS_CHECK(pos_ + n <= bytes_.size(), kOp, "'", name_, "' is truncated (reading ", what,
                " at byte ", pos_, ", ", n, " bytes needed, ", bytes_.size() - pos_, " left)");
    const uint8_t* p = reinterpret_cast<const uint8_t*>(bytes_.data()) + pos_;
    pos_ += n;
    return p;
  }
  uint32_t u32(const char* what) {
    const uint8_t* p = take(4, what);
    return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
  }
  size_t pos() const { return pos_; }
  size_t size() const { return bytes_.size(); }

 private:
  const std::string& bytes_;
  const std::string& name_;
  size_t pos_ = 0;
};

std::vector<GraphSample> read_split(Cursor& c, const std::string& name, const char* split) {
  const uint32_t graphs = c.u32("graph count"), total_nodes = c.u32("node count"),
                 total_bonds = c.u32("bond count");
  LAPIS_CHECK(graphs <= 1000000 && total_nodes <= 100000000 && total_bonds <= 100000000, kOp,
              "'", name, "': implausible counts for split ", split, " (", graphs, " graphs, ",
              total_nodes, " nodes, ", total_bonds, " bonds)");
  const uint8_t* sizes = c.take(graphs, "graph sizes");
  const uint8_t* bond_counts = c.take(graphs, "bond counts");
  const uint8_t* ybytes = c.take(4 * static_cast<size_t>(graphs), "targets");
  const uint8_t* atoms = c.take(total_nodes, "atom types");
  const uint8_t* bi = c.take(total_bonds, "bond ends");
  const uint8_t* bj = c.take(total_bonds, "bond ends");
  const uint8_t* bt = c.take(total_bonds, "bond types");

  std::vector<GraphSample> out(graphs);
  size_t node0 = 0, bond0 = 0;
  for (uint32_t g = 0; g < graphs; ++g) {
    const int64_t n = sizes[g], m = bond_counts[g];
    LAPIS_CHECK(node0 + n <= total_nodes && bond0 + m <= total_bonds, kOp, "'", name, "' ",
                split, " graph ", g, ": sizes exceed the split's totals");
    Tensor node_features = Tensor::empty({n, 1}, Dtype::I32);
    int32_t* nf = node_features.data<int32_t>();
    for (int64_t k = 0; k < n; ++k) {
      const int a = atoms[node0 + k];
      LAPIS_CHECK(a < kAtomTypes, kOp, "'", name, "' ", split, " graph ", g, " atom ", k,
                  ": type ", a, " outside [0, ", kAtomTypes, ")");
      nf[k] = a;
    }
    // Each bond as two directed edges, the reverse carrying the same bond type.
    std::vector<int32_t> src(2 * m), dst(2 * m);
    Tensor edge_features = Tensor::empty({2 * m, 1}, Dtype::I32);
    int32_t* ef = edge_features.data<int32_t>();
    for (int64_t k = 0; k < m; ++k) {
      const int i = bi[bond0 + k], j = bj[bond0 + k], t = bt[bond0 + k];
      LAPIS_CHECK(i < n && j < n && i != j && t >= 1 && t < kBondTypes, kOp, "'", name, "' ",
                  split, " graph ", g, " bond ", k, ": (", i, ", ", j, ", type ", t,
                  ") invalid for ", n, " atoms");
      src[2 * k] = i;
      dst[2 * k] = j;
      src[2 * k + 1] = j;
      dst[2 * k + 1] = i;
      ef[2 * k] = ef[2 * k + 1] = t;
    }
    float y;
    std::memcpy(&y, ybytes + 4 * static_cast<size_t>(g), 4);  // little-endian hosts only
    LAPIS_CHECK(std::isfinite(y), kOp, "'", name, "' ", split, " graph ", g, ": target is ", y);
    GraphSample& s = out[g];
    s.graph = graph_from_coo(n, src, dst, CooOptions{}, edge_features, node_features);
    s.y = Tensor::from_vector<float>({y}, {1});
    node0 += n;
    bond0 += m;
  }
  LAPIS_CHECK(node0 == total_nodes && bond0 == total_bonds, kOp, "'", name, "' ", split,
              ": graph sizes sum to ", node0, " nodes / ", bond0, " bonds, header says ",
              total_nodes, " / ", total_bonds);
  return out;
}

}  // namespace

GraphDataset load_zinc(const std::string& path) {
  std::string file;
  if (path.empty()) {
    file = find_data_file(kZincBundle);
  } else if (file_exists(path)) {
    file = path;
  } else {
    file = find_data_file(kZincBundle, path);  // a data folder
  }
  const std::string bytes = gunzip(read_file_bytes(file, kOp), file);
  Cursor c(bytes, file);
  const uint8_t* magic = c.take(8, "magic");
  LAPIS_CHECK(std::memcmp(magic, "LAPISZNC", 8) == 0, kOp, "'", file,
              "' is not a Lapis ZINC bundle (bad magic)");
  const uint32_t version = c.u32("version");
  LAPIS_CHECK(version == 1, kOp, "'", file, "' has bundle version ", version,
              ", this build reads version 1 (regenerate with scripts/make_zinc_bundle.py)");

  GraphDataset d;
  d.name = "zinc";
  d.task = TaskLevel::Graph;
  d.num_node_types = kAtomTypes;
  d.num_edge_types = kBondTypes;
  d.num_classes = 0;
  d.num_targets = 1;
  d.train = read_split(c, file, "train");
  d.val = read_split(c, file, "val");
  d.test = read_split(c, file, "test");
  LAPIS_CHECK(c.pos() == c.size(), kOp, "'", file, "' has ", c.size() - c.pos(),
              " unexpected trailing bytes");
  return d;
}

}  // namespace graph
}  // namespace lapis
