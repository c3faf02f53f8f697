// TfIdfVectorizer on integer tokens: n-gram counts with and without gaps,
// the three weightings, and the errors that name a bad pool.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "node_harness.h"

using namespace caliprox;
using namespace caliprox::test;

namespace {

// Pool: unigrams 2, 3, 5, 4 and bigrams (5, 6), (7, 8), (6, 7), output
// positions 0..6 in that order.
Node vectorizer(const std::string& mode, int64_t min_n, int64_t max_n, int64_t skip) {
  return make_node("TfIdfVectorizer", 1,
                   {{"mode", str(mode)},
                    {"min_gram_length", int_attr(min_n)},
                    {"max_gram_length", int_attr(max_n)},
                    {"max_skip_count", int_attr(skip)},
                    {"ngram_counts", ints({0, 4})},
                    {"ngram_indexes", ints({0, 1, 2, 3, 4, 5, 6})},
                    {"pool_int64s", ints({2, 3, 5, 4, 5, 6, 7, 8, 6, 7})},
                    {"weights", floats({1, 2, 3, 4, 5, 6, 7})}});
}

const std::vector<int64_t> kRow = {1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8};

}  // namespace

TEST_CASE("TfIdfVectorizer: counts, gaps and weightings") {
  auto tf = run_node(vectorizer("TF", 1, 2, 0), {i64({12}, kRow)}, {false});
  REQUIRE_MESSAGE(tf.ok(), tf.status().message());
  // 3 three times, 5 once; adjacent (7, 8), (6, 7), (5, 6) once each
  check_values(tf->at(0), {7}, {0, 3, 1, 0, 1, 1, 1});
  // Bigrams with gaps up to 5 pair positions i and i + gap + 1: (7, 8) at
  // 5-6, 5-11 and 8-11; (6, 7) at 7-8; (5, 6) at 9-10. Unigrams are off.
  auto gaps = run_node(vectorizer("TF", 2, 2, 5), {i64({12}, kRow)}, {false});
  REQUIRE(gaps.ok());
  check_values(gaps->at(0), {7}, {0, 0, 0, 0, 1, 3, 1});
  auto idf = run_node(vectorizer("IDF", 1, 2, 0), {i64({12}, kRow)}, {false});
  REQUIRE(idf.ok());
  check_values(idf->at(0), {7}, {0, 2, 3, 0, 5, 6, 7});
  auto tfidf = run_node(vectorizer("TFIDF", 1, 2, 0), {i64({2, 6}, kRow)}, {false});
  REQUIRE(tfidf.ok());
  // rows [1, 1, 3, 3, 3, 7] and [8, 6, 7, 5, 6, 8]: 3 three times; (6, 7) and (5, 6)
  check_values(tfidf->at(0), {2, 7}, {0, 6, 0, 0, 0, 0, 0, 0, 0, 3, 0, 5, 0, 7});
}

TEST_CASE("TfIdfVectorizer: a pool that does not split into n-grams is named") {
  Node bad = vectorizer("TF", 1, 2, 0);
  bad.attrs["ngram_counts"] = ints({0, 3});  // 7 values left for bigrams
  auto r = run_node(bad, {i64({3}, {1, 2, 3})}, {false});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("ngram_counts[1] = 3 does not start a whole number of 2-grams") != std::string::npos);
  Node mode = vectorizer("BM25", 1, 2, 0);
  auto m = run_node(mode, {i64({3}, {1, 2, 3})}, {false});
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().message().find("mode 'BM25'") != std::string::npos);
}
