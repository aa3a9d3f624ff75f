#define CAF_TEST_NO_MAIN
#include <caf/test/unit_test_impl.hpp>
#include "schemas/messages.hpp"
int main(int argc, char** argv) { return caf::test::main(argc, argv); }
