// Batching (block diagonal, offsets, features, split back) and GraphDataLoader (coverage,
// seeded order, drop_last, errors, worker exceptions).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "graph/batch.h"
#include "graph/data_loader.h"
#include "graph/graph.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace graph {
namespace {

using ::lapis::testing::bitwise_equal;
using ::lapis::testing::expect_error_mentions;

std::vector<int32_t> vec(const Tensor& t) { return t.to_vector<int32_t>(); }

struct Coo {
  int64_t n;
  std::vector<int32_t> src, dst;
};

Coo random_coo(Generator& gen, int64_t n, int64_t e) {
  Coo c{n, {}, {}};
  for (int64_t i = 0; i < e; ++i) {
    c.src.push_back(static_cast<int32_t>(gen.uniform() * n) % static_cast<int32_t>(n));
    c.dst.push_back(static_cast<int32_t>(gen.uniform() * n) % static_cast<int32_t>(n));
  }
  return c;
}

Graph random_graph(Generator& gen, int64_t n, int64_t e, int64_t fn = 3, int64_t fe = 2) {
  const Coo c = n > 0 ? random_coo(gen, n, e) : Coo{0, {}, {}};
  return graph_from_coo(n, c.src, c.dst, {}, Tensor::randn({e, fe}, gen),
                        Tensor::randn({n, fn}, gen));
}

TEST(Batch, BlockDiagonalMatchesDirectBuildAndSplitsBack) {
  Generator gen(11);
  // Includes a graph without edges, an empty graph and a single node.
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{7, 20}, {5, 0}, {0, 0}, {33, 90},
                                                          {1, 1}};
  std::vector<Graph> graphs;
  for (auto [n, e] : sizes) graphs.push_back(random_graph(gen, n, e));
  std::vector<const Graph*> ptrs;
  for (const Graph& g : graphs) ptrs.push_back(&g);
  const GraphBatch batch = batch_graphs(ptrs);
  batch.graph.validate();
  ASSERT_EQ(batch.num_graphs, 5);
  EXPECT_EQ(vec(batch.node_ptr), (std::vector<int32_t>{0, 7, 12, 12, 45, 46}));
  std::vector<int32_t> edge_ptr{0};
  for (const Graph& g : graphs) edge_ptr.push_back(edge_ptr.back() + g.num_edges);
  EXPECT_EQ(vec(batch.edge_ptr), edge_ptr);
  // node_graph
  std::vector<int32_t> expected_ng;
  for (size_t b = 0; b < graphs.size(); ++b) expected_ng.insert(expected_ng.end(),
                                                                graphs[b].num_nodes, b);
  EXPECT_EQ(vec(batch.node_graph), expected_ng);

  // The batch equals graph_from_coo of the shifted, concatenated edges (already sorted per block).
  std::vector<int32_t> src, dst;
  int32_t offset = 0;
  for (const Graph& g : graphs) {
    for (int32_t s : vec(g.src)) src.push_back(s + offset);
    for (int32_t d : vec(g.dst)) dst.push_back(d + offset);
    offset += static_cast<int32_t>(g.num_nodes);
  }
  const Graph direct = graph_from_coo(offset, src, dst);
  EXPECT_EQ(vec(batch.graph.in_ptr), vec(direct.in_ptr));
  EXPECT_EQ(vec(batch.graph.src), vec(direct.src));
  EXPECT_EQ(vec(batch.graph.dst), vec(direct.dst));
  EXPECT_EQ(vec(batch.graph.out_ptr), vec(direct.out_ptr));
  EXPECT_EQ(vec(batch.graph.out_edge), vec(direct.out_edge));
  EXPECT_EQ(vec(batch.graph.out_dst), vec(direct.out_dst));

  // Features concatenated, and split back bitwise.
  ASSERT_EQ(batch.graph.node_features.shape(), (Shape{46, 3}));
  ASSERT_EQ(batch.graph.edge_features.shape(), (Shape{edge_ptr.back(), 2}));
  const auto node_parts = split_node_rows(batch.graph.node_features, batch);
  const auto edge_parts = split_edge_rows(batch.graph.edge_features, batch);
  ASSERT_EQ(node_parts.size(), graphs.size());
  for (size_t b = 0; b < graphs.size(); ++b) {
    EXPECT_TRUE(bitwise_equal(node_parts[b], graphs[b].node_features)) << "graph " << b;
    EXPECT_TRUE(bitwise_equal(edge_parts[b], graphs[b].edge_features)) << "graph " << b;
  }
  // A model output [N, C] of another width and dtype splits too.
  const Tensor out = Tensor::randn({46, 5}, gen, Dtype::F64);
  const auto parts = split_node_rows(out, batch);
  EXPECT_EQ(parts[3].shape(), (Shape{33, 5}));
  EXPECT_EQ(parts[2].shape(), (Shape{0, 5}));
  EXPECT_EQ(parts[4].to_vector<double>()[4], out.to_vector<double>()[45 * 5 + 4]);
  expect_error_mentions([&] { split_node_rows(Tensor::zeros({45, 5}), batch); },
                        {"split_node_rows", "46", "[45, 5]"});
}

TEST(Batch, EmptyListAndSingleGraph) {
  const GraphBatch empty = batch_graphs({});
  empty.graph.validate();
  EXPECT_EQ(empty.num_graphs, 0);
  EXPECT_EQ(vec(empty.node_ptr), (std::vector<int32_t>{0}));
  EXPECT_TRUE(split_node_rows(Tensor::zeros({0, 3}), empty).empty());

  Generator gen(2);
  const Graph g = random_graph(gen, 9, 20);
  const GraphBatch one = batch_graphs({&g});
  EXPECT_EQ(vec(one.graph.src), vec(g.src));
  EXPECT_EQ(vec(one.graph.out_edge), vec(g.out_edge));
  EXPECT_EQ(vec(one.node_graph), std::vector<int32_t>(9, 0));
}

TEST(Batch, FeatureMismatchesAreErrors) {
  Generator gen(5);
  const Graph a = random_graph(gen, 4, 6, 3, 2);
  const Graph wide = random_graph(gen, 4, 6, 4, 2);
  expect_error_mentions([&] { batch_graphs({&a, &wide}); },
                        {"batch_graphs", "node_features of graph 1", "[4, 4]", "[4, 3]"});
  Graph f64 = a;
  f64.edge_features = a.edge_features.to(Dtype::F64);
  expect_error_mentions([&] { batch_graphs({&a, &f64}); }, {"edge_features of graph 1", "f64"});
  Graph bare = a;
  bare.node_features = Tensor();
  expect_error_mentions([&] { batch_graphs({&a, &bare}); },
                        {"graph 1 has no node_features", "every graph or in none"});
  // A graph without nodes may omit node features.
  const Graph nothing = graph_from_coo(0, {}, {});
  const GraphBatch ok = batch_graphs({&a, &nothing, &a});
  EXPECT_EQ(ok.graph.node_features.shape(), (Shape{8, 3}));
  expect_error_mentions([&] { batch_graphs({&a, nullptr}); }, {"graph 1 is null"});
}

GraphSample make_sample(Generator& gen, int64_t n, int64_t e, double target) {
  GraphSample s;
  s.graph = random_graph(gen, n, e);
  s.y = Tensor::from_vector<float>({static_cast<float>(target)}, {1});
  s.node_extras.push_back(Tensor::randn({n, 4}, gen));                    // e.g. LapPE
  s.node_extras.push_back(Tensor::randint({n}, gen, 0, 3, Dtype::I32));  // e.g. node labels
  return s;
}

TEST(Batch, SamplesConcatenateTargetsAndExtras) {
  Generator gen(8);
  std::vector<GraphSample> samples;
  for (int i = 0; i < 4; ++i) samples.push_back(make_sample(gen, 3 + i, 2 * i, 10.0 + i));
  std::vector<const GraphSample*> ptrs;
  for (const auto& s : samples) ptrs.push_back(&s);
  const GraphBatch b = batch_samples(ptrs);
  EXPECT_EQ(b.y.shape(), (Shape{4}));
  EXPECT_EQ(b.y.to_vector<float>(), (std::vector<float>{10, 11, 12, 13}));
  ASSERT_EQ(b.node_extras.size(), 2u);
  EXPECT_EQ(b.node_extras[0].shape(), (Shape{18, 4}));
  EXPECT_EQ(b.node_extras[1].dtype(), Dtype::I32);
  const auto pe = split_node_rows(b.node_extras[0], b);
  const auto labels = split_node_rows(b.node_extras[1], b);
  for (size_t i = 0; i < samples.size(); ++i) {
    EXPECT_TRUE(bitwise_equal(pe[i], samples[i].node_extras[0]));
    EXPECT_TRUE(bitwise_equal(labels[i], samples[i].node_extras[1]));
  }

  // Node-level targets [N_b] concatenate to [N]; 0-d targets count as [1].
  std::vector<GraphSample> node_level = samples;
  for (auto& s : node_level) s.y = Tensor::zeros({s.graph.num_nodes}, Dtype::I32);
  std::vector<const GraphSample*> np;
  for (const auto& s : node_level) np.push_back(&s);
  EXPECT_EQ(batch_samples(np).y.shape(), (Shape{18}));
  std::vector<GraphSample> scalar = samples;
  for (auto& s : scalar) s.y = Tensor::zeros({}, Dtype::F64);
  std::vector<const GraphSample*> sp;
  for (const auto& s : scalar) sp.push_back(&s);
  EXPECT_EQ(batch_samples(sp).y.shape(), (Shape{4}));

  // Errors.
  std::vector<GraphSample> bad = samples;
  bad[2].node_extras.pop_back();
  std::vector<const GraphSample*> bp;
  for (const auto& s : bad) bp.push_back(&s);
  expect_error_mentions([&] { batch_samples(bp); }, {"sample 2 has 1 node_extras"});
  bad = samples;
  bad[1].node_extras[0] = Tensor::zeros({2, 4});
  expect_error_mentions([&] { batch_samples(bp); },
                        {"node_extras[0] of sample 1", "one row per node (4)", "[2, 4]"});
}

std::vector<GraphSample> dataset(int64_t count, uint64_t seed = 1) {
  Generator gen(seed);
  std::vector<GraphSample> samples;
  for (int64_t i = 0; i < count; ++i) {
    // Target = sample index, so batches tell which samples they hold.
    samples.push_back(make_sample(gen, 1 + i % 9, (i * 7) % 13, static_cast<double>(i)));
  }
  return samples;
}

std::vector<int64_t> run_epoch(GraphDataLoader& loader, int64_t epoch,
                               std::vector<int64_t>* batch_sizes = nullptr) {
  loader.start_epoch(epoch);
  std::vector<int64_t> seen;
  GraphBatch b;
  while (loader.next(b)) {
    b.graph.validate();
    EXPECT_EQ(b.num_graphs, static_cast<int64_t>(b.sample_index.size()));
    const auto y = b.y.to_vector<float>();
    for (size_t i = 0; i < y.size(); ++i) {
      EXPECT_EQ(static_cast<int64_t>(y[i]), b.sample_index[i]);  // targets follow their samples
    }
    if (batch_sizes) batch_sizes->push_back(b.num_graphs);
    seen.insert(seen.end(), b.sample_index.begin(), b.sample_index.end());
  }
  EXPECT_FALSE(loader.next(b));  // stays over
  return seen;
}

TEST(DataLoader, CoversEverySampleOncePerEpoch) {
  const auto samples = dataset(37);
  for (bool background : {true, false}) {
    DataLoaderOptions o;
    o.batch_size = 5;
    o.seed = 42;
    o.background = background;
    GraphDataLoader loader(samples, o);
    EXPECT_EQ(loader.num_batches(), 8);
    for (int64_t epoch = 0; epoch < 3; ++epoch) {
      std::vector<int64_t> sizes;
      auto seen = run_epoch(loader, epoch, &sizes);
      EXPECT_EQ(seen, loader.epoch_order(epoch));
      EXPECT_EQ(sizes, (std::vector<int64_t>{5, 5, 5, 5, 5, 5, 5, 2}));
      std::sort(seen.begin(), seen.end());
      std::vector<int64_t> all(37);
      std::iota(all.begin(), all.end(), 0);
      EXPECT_EQ(seen, all);
    }
  }
}

TEST(DataLoader, SeededOrderIsReproducible) {
  const auto samples = dataset(50);
  DataLoaderOptions o;
  o.batch_size = 8;
  o.seed = 7;
  GraphDataLoader a(samples, o), b(samples, o);
  EXPECT_EQ(run_epoch(a, 0), run_epoch(b, 0));
  EXPECT_EQ(run_epoch(a, 3), run_epoch(b, 3));
  EXPECT_NE(a.epoch_order(0), a.epoch_order(1));  // reshuffled every epoch
  o.seed = 8;
  GraphDataLoader c(samples, o);
  EXPECT_NE(c.epoch_order(0), a.epoch_order(0));
  // start_epoch() without argument counts up from 0.
  GraphDataLoader d(samples, o);
  d.start_epoch();
  d.start_epoch();
  GraphBatch first;
  ASSERT_TRUE(d.next(first));
  const auto order1 = d.epoch_order(1);
  EXPECT_EQ(first.sample_index, std::vector<int64_t>(order1.begin(), order1.begin() + 8));
  // No shuffle: identity order.
  o.shuffle = false;
  GraphDataLoader e(samples, o);
  std::vector<int64_t> identity(50);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(run_epoch(e, 5), identity);
}

TEST(DataLoader, DropLast) {
  const auto samples = dataset(37);
  DataLoaderOptions o;
  o.batch_size = 5;
  o.drop_last = true;
  GraphDataLoader loader(samples, o);
  EXPECT_EQ(loader.num_batches(), 7);
  std::vector<int64_t> sizes;
  const auto seen = run_epoch(loader, 0, &sizes);
  EXPECT_EQ(sizes, std::vector<int64_t>(7, 5));
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 35u);
  // Fewer samples than one batch: no batches at all.
  o.batch_size = 64;
  GraphDataLoader tiny(samples, o);
  EXPECT_EQ(tiny.num_batches(), 0);
  EXPECT_TRUE(run_epoch(tiny, 0).empty());
}

TEST(DataLoader, AbandonedEpochAndOwningConstructor) {
  auto owned = std::make_shared<std::vector<GraphSample>>(dataset(30));
  DataLoaderOptions o;
  o.batch_size = 3;
  o.prefetch = 1;
  GraphDataLoader loader(std::shared_ptr<const std::vector<GraphSample>>(owned), o);
  owned.reset();  // the loader keeps the samples alive
  loader.start_epoch(0);
  GraphBatch b;
  ASSERT_TRUE(loader.next(b));  // leave the worker blocked on a full queue
  const auto seen = run_epoch(loader, 1);
  EXPECT_EQ(seen.size(), 30u);
  loader.start_epoch(2);  // destroyed mid-epoch: the destructor stops the worker
}

TEST(DataLoader, Errors) {
  const std::vector<GraphSample> none;
  expect_error_mentions([&] { GraphDataLoader l(none, {}); }, {"GraphDataLoader", "empty"});
  const auto samples = dataset(4);
  DataLoaderOptions o;
  o.batch_size = 0;
  expect_error_mentions([&] { GraphDataLoader l(samples, o); }, {"batch_size", "0"});
  o.batch_size = 2;
  GraphDataLoader loader(samples, o);
  GraphBatch b;
  expect_error_mentions([&] { loader.next(b); }, {"start_epoch"});
}

TEST(DataLoader, WorkerExceptionsPropagate) {
  auto samples = dataset(20);
  // Sample 13 has f64 node features where the others have f32: collating its batch fails.
  samples[13].graph.node_features = samples[13].graph.node_features.to(Dtype::F64);
  for (bool background : {true, false}) {
    DataLoaderOptions o;
    o.batch_size = 4;
    o.shuffle = false;
    o.background = background;
    GraphDataLoader loader(samples, o);
    loader.start_epoch(0);
    GraphBatch b;
    int batches = 0;
    try {
      while (loader.next(b)) ++batches;
      FAIL() << "expected a collation error";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("batch 3 of epoch 0"), std::string::npos) << what;
      EXPECT_NE(what.find("f64"), std::string::npos) << what;
    }
    EXPECT_EQ(batches, 3);
    EXPECT_FALSE(loader.next(b));  // the epoch ended with the error
    // The next epoch fails the same way, and the loader stays usable.
    loader.start_epoch(1);
    EXPECT_TRUE(loader.next(b));
  }
}

TEST(BatchCuda, MoveToDevice) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const auto samples = dataset(10);
  DataLoaderOptions o;
  o.batch_size = 4;
  o.device = Device::cuda();
  GraphDataLoader loader(samples, o);
  loader.start_epoch(0);
  GraphBatch b;
  ASSERT_TRUE(loader.next(b));
  EXPECT_TRUE(b.graph.src.is_cuda());
  EXPECT_TRUE(b.graph.node_features.is_cuda());
  EXPECT_TRUE(b.node_graph.is_cuda() && b.node_ptr.is_cuda() && b.y.is_cuda());
  EXPECT_TRUE(b.node_extras[0].is_cuda());
  b.graph.validate();
  const auto parts = split_node_rows(b.node_extras[0], b);
  EXPECT_TRUE(parts[0].is_cuda());
  EXPECT_TRUE(bitwise_equal(parts[0].to(Device::cpu()),
                            samples[b.sample_index[0]].node_extras[0]));
}

}  // namespace
}  // namespace graph
}  // namespace lapis
