# ctest "standalone.fresh_copy_configures" (cmake -P): the repository stands alone. Copies the
# source tree into a fresh temporary folder that has no shared/ beside it, configures it there (no
# build: seconds), and checks that the configure step succeeds and that the reference-data folder
# the tests are compiled with lies inside that copy and holds the reference files. Removes the
# folder afterwards, also on failure.
#
# What is copied: in a git checkout, the files git tracks (`git ls-files`), with their working-tree
# contents: what a clone would get once the current edits are committed, so a data or CMake file
# left untracked fails here rather than on someone else's machine. (Not `git archive HEAD`: it would
# test the last commit, not the tree being worked on.) Outside a git checkout (a tarball, an
# export), the whole source folder minus version-control folders and build trees (any folder
# holding a CMakeCache.txt).
#
# Inputs (-D): SOURCE_DIR, GENERATOR, CXX_COMPILER, BENCH (SHOREDAQ_BENCH of the calling build:
# a build configured without Google Benchmark must not need it here).

foreach(input IN ITEMS SOURCE_DIR GENERATOR CXX_COMPILER BENCH)
  if(NOT DEFINED ${input})
    message(FATAL_ERROR "configure_fresh_copy.cmake needs -D${input}=...")
  endif()
endforeach()

# <temp>/shoredaq-standalone-XXXXXXXX/shoredaq: a fresh parent, so nothing (no shared/ folder in
# particular) stands beside the copy.
set(temp_root "/tmp")
if(DEFINED ENV{TMPDIR} AND IS_DIRECTORY "$ENV{TMPDIR}")
  set(temp_root "$ENV{TMPDIR}")
endif()
foreach(attempt RANGE 20)
  string(RANDOM LENGTH 8 ALPHABET "abcdefghijklmnopqrstuvwxyz0123456789" suffix)
  set(work_dir "${temp_root}/shoredaq-standalone-${suffix}")
  if(NOT EXISTS "${work_dir}")
    break()
  endif()
endforeach()
if(EXISTS "${work_dir}")
  message(FATAL_ERROR "cannot find a free temporary folder name under ${temp_root}")
endif()
set(copy_dir "${work_dir}/shoredaq")
file(MAKE_DIRECTORY "${copy_dir}")

# Every failure below is recorded, the folder removed, and only then the test failed.
set(failure "")

# Is SOURCE_DIR the top of a git work tree (not a tarball unpacked inside some other repository)?
set(copy_tracked_files FALSE)
find_program(GIT_PROGRAM git)
if(GIT_PROGRAM)
  execute_process(COMMAND "${GIT_PROGRAM}" -C "${SOURCE_DIR}" rev-parse --show-toplevel
    OUTPUT_VARIABLE git_top RESULT_VARIABLE git_result OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(git_result EQUAL 0)
    file(REAL_PATH "${git_top}" git_top_real)
    file(REAL_PATH "${SOURCE_DIR}" source_real)
    if(git_top_real STREQUAL source_real)
      set(copy_tracked_files TRUE)
    endif()
  endif()
endif()

# tar does the copying: it reads NUL-separated names (any file name) and keeps modes.
if(copy_tracked_files)
  message(STATUS "copying the files git tracks in ${SOURCE_DIR} to ${copy_dir}")
  execute_process(
    COMMAND "${GIT_PROGRAM}" -C "${SOURCE_DIR}" ls-files -z
    # --ignore-failed-read: a tracked file deleted in the work tree is simply not in the copy.
    COMMAND tar -C "${SOURCE_DIR}" --null --no-recursion --ignore-failed-read -cf - --files-from=-
    COMMAND tar -C "${copy_dir}" -xf -
    RESULTS_VARIABLE copy_results ERROR_VARIABLE copy_errors)
else()
  message(STATUS "not a git checkout: copying ${SOURCE_DIR} (without build trees) to ${copy_dir}")
  execute_process(
    COMMAND tar -C "${SOURCE_DIR}" --exclude-vcs --exclude-tag-all=CMakeCache.txt -cf - .
    COMMAND tar -C "${copy_dir}" -xf -
    RESULTS_VARIABLE copy_results ERROR_VARIABLE copy_errors)
endif()
foreach(result IN LISTS copy_results)
  if(NOT result EQUAL 0)
    set(failure "copying the source tree failed (${copy_results}): ${copy_errors}")
  endif()
endforeach()

if(NOT failure)
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -S "${copy_dir}" -B "${copy_dir}/build" -G "${GENERATOR}"
      -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DSHOREDAQ_BENCH=${BENCH}"
      -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
    RESULT_VARIABLE configure_result OUTPUT_VARIABLE configure_log ERROR_VARIABLE configure_log)
  if(NOT configure_result EQUAL 0)
    set(failure "configuring the fresh copy failed (${configure_result}):\n${configure_log}")
  endif()
endif()

# The folder the tests are really compiled with: the SHOREDAQ_TESTDATA_DIR definition of a test's
# compile command, not what some cache entry claims.
if(NOT failure)
  set(compile_commands_file "${copy_dir}/build/compile_commands.json")
  set(testdata_dir "")
  if(EXISTS "${compile_commands_file}")
    file(READ "${compile_commands_file}" compile_commands)
    string(JSON entry_count ERROR_VARIABLE json_error LENGTH "${compile_commands}")
    if(json_error)
      set(entry_count 0)
    endif()
    if(entry_count GREATER 0)
      math(EXPR last_entry "${entry_count} - 1")
      foreach(index RANGE ${last_entry})
        string(JSON command GET "${compile_commands}" ${index} command)
        if(command MATCHES "-DSHOREDAQ_TESTDATA_DIR=\\\\?\"([^\"\\\\]*)\\\\?\"")
          set(testdata_dir "${CMAKE_MATCH_1}")
          break()
        endif()
      endforeach()
    endif()
  endif()
  if(testdata_dir STREQUAL "")
    set(failure "no compile command in ${compile_commands_file} defines SHOREDAQ_TESTDATA_DIR")
  endif()
endif()

if(NOT failure)
  message(STATUS "the tests of the fresh copy read their reference data from ${testdata_dir}")
  file(REAL_PATH "${testdata_dir}" testdata_real)
  file(REAL_PATH "${copy_dir}" copy_real)
  string(FIND "${testdata_real}/" "${copy_real}/" inside_copy)
  if(NOT inside_copy EQUAL 0)
    string(CONCAT failure "SHOREDAQ_TESTDATA_DIR (${testdata_dir}) is outside the fresh copy "
      "${copy_dir}: the repository depends on a folder beside it")
  endif()
endif()

if(NOT failure)
  set(missing "")
  foreach(reference IN ITEMS
      detx/KM3NeT_00000133_20221025.detx detx/KM3NeT_-00000001_20171212.detx detx/detx_v5.detx
      daq/IO_EVT.dat daq/IO_SUM.dat daq/IO_TSL1_1003.dat daq/IO_TSSN.dat daq/IO_MONIT.dat
      daq/clb.dqd)
    set(path "${testdata_dir}/${reference}")
    if(NOT EXISTS "${path}" OR IS_DIRECTORY "${path}")
      list(APPEND missing "${reference}")
    else()
      file(SIZE "${path}" size_bytes)
      if(size_bytes EQUAL 0)
        list(APPEND missing "${reference} (empty)")
      endif()
    endif()
  endforeach()
  if(missing)
    list(JOIN missing ", " missing_text)
    set(failure "the configured reference-data folder ${testdata_dir} lacks: ${missing_text}")
  endif()
endif()

file(REMOVE_RECURSE "${work_dir}")
if(failure)
  message(FATAL_ERROR "${failure}")
endif()
message(STATUS "a fresh copy without shared/ beside it configures, its reference data complete")
