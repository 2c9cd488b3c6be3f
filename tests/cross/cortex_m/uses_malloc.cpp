// uses_malloc.cpp - negative test for build_and_run.sh: a program that uses the heap
// (malloc and operator new). Its build must FAIL; it is never meant to run.
#include <stdlib.h>

#include "semihosting.h"

int main() {
  void* block = malloc(16);
  int* value = new int(7);
  semihost_write(block != nullptr && *value == 7 ? "heap works\n" : "no heap\n");
  return 0;
}
