// tests/malloc_hooks.cpp: the one definition of the malloc interposer of malloc_hooks.hpp in a test
// program (a source of its own, so that test files compiled together or apart never define it twice).
#define TOKENFORMER_MALLOC_HOOKS_DEFINE 1
#include "malloc_hooks.hpp"
