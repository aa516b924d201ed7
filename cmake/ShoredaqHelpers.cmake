# Shared build conventions for every folder.

# Warnings on for our own code (generated and third-party headers are included as SYSTEM).
function(shoredaq_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  # GCC 12 at -O2/-O3 reports false positives from inlined libstdc++ code (GCC bugs 105329,
  # 105651, 106199: memcpy/memcmp "bounds" on vectors). They say nothing about our code; the
  # sanitizer build checks the real thing.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12)
    target_compile_options(${target} PRIVATE -Wno-stringop-overread -Wno-stringop-overflow -Wno-restrict -Wno-array-bounds)
  endif()
  # With -fsanitize=address GCC 12 reports maybe-uninitialized inside libstdc++'s std::regex and
  # std::function (false positives of the instrumented code); the plain build keeps the warning.
  if(SHOREDAQ_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
  endif()
  if(SHOREDAQ_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# One library per folder area: sources from the given globs, public headers under include/.
function(shoredaq_library name)
  cmake_parse_arguments(ARG "" "" "GLOBS;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${ARG_GLOBS})
  if(sources)
    add_library(${name} STATIC ${sources})
    target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_link_libraries(${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
    shoredaq_warnings(${name})
  else()  # headers only so far
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_link_libraries(${name} INTERFACE ${ARG_PUBLIC_DEPS})
  endif()
endfunction()

# Every tests/*_test.cpp of a folder becomes its own GoogleTest executable, so one broken
# test file does not hide the others. Tests find the reference data and the built programs
# through compile definitions. PROPERTIES: more ctest properties for every test of the area (e.g.
# FIXTURES_REQUIRED, for tests that share an expensive set-up step).
function(shoredaq_tests area)
  cmake_parse_arguments(ARG "" "" "DEPS;PROPERTIES" ${ARGN})
  file(GLOB test_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/tests/*_test.cpp)
  foreach(src IN LISTS test_sources)
    get_filename_component(stem ${src} NAME_WE)
    set(exe ${area}_${stem})
    add_executable(${exe} ${src})
    target_link_libraries(${exe} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main Threads::Threads)
    target_compile_definitions(${exe} PRIVATE
      SHOREDAQ_TESTDATA_DIR="${SHOREDAQ_TESTDATA_DIR}"
      SHOREDAQ_BINARY_DIR="${CMAKE_BINARY_DIR}"
      SHOREDAQ_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
    shoredaq_warnings(${exe})
    gtest_discover_tests(${exe} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
      PROPERTIES LABELS ${area} TIMEOUT 300 ${ARG_PROPERTIES})
  endforeach()
endfunction()

# A program of a folder: every .cpp in DIR, linked against DEPS; installed to bin/. Its name is
# recorded in the global property SHOREDAQ_PROGRAMS (the Debian package builds and documents
# every program: packaging/CMakeLists.txt).
function(shoredaq_program name dir)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${dir}/*.cpp)
  if(NOT sources)
    return()
  endif()
  add_executable(${name} ${sources})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  shoredaq_warnings(${name})
  install(TARGETS ${name} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  set_property(GLOBAL APPEND PROPERTY SHOREDAQ_PROGRAMS ${name})
endfunction()
