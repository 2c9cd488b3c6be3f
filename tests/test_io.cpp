#include <catch2/catch.hpp>
#include "tokenformer/core/tensor.hpp"
TEST_CASE("x") { CHECK(1 == 1); }
