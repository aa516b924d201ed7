# The reference data the tests, benchmarks and the demo read lives in the repository
# (tests/data/km3net-testdata/), the large files gzipped so that no tracked file is over 1 MiB.
# At configure time it is staged, every file uncompressed, into a folder of the build tree, and each
# staged file is checked against SHA256SUMS (hashes of the uncompressed originals): golden tests
# must read the exact bytes the collaboration's software wrote.

# Stages the files listed in <source_dir>/SHA256SUMS into <output_dir>. A listed file is taken
# from <source_dir>/<path>, or decompressed from <source_dir>/<path>.gz. Fails the configure step
# with the reason when a file is missing, unlisted or differs from its hash. Re-runs whenever the
# manifest or a source file changes (CMAKE_CONFIGURE_DEPENDS); files the manifest no longer lists
# are removed from <output_dir>, so it holds exactly the reference set.
function(shoredaq_stage_testdata source_dir output_dir)
  set(manifest "${source_dir}/SHA256SUMS")
  if(NOT EXISTS "${manifest}")
    message(FATAL_ERROR "shoredaq: the reference test data is missing: ${manifest} does not exist. "
      "It is part of the repository (tests/data/km3net-testdata/); restore it from git.")
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${manifest}")

  file(STRINGS "${manifest}" manifest_lines)
  set(listed_sources "")
  set(staged_files "")
  foreach(line IN LISTS manifest_lines)
    # sha256sum's format: "<64 hex digits>  <path>" ("*" instead of the second blank in binary mode).
    if(NOT line MATCHES "^([0-9a-f]+) [ *](.+)$")
      message(FATAL_ERROR "shoredaq: ${manifest}: not a sha256sum line: '${line}'")
    endif()
    set(expected_sha256 "${CMAKE_MATCH_1}")
    set(relative_path "${CMAKE_MATCH_2}")
    set(staged "${output_dir}/${relative_path}")
    get_filename_component(staged_parent "${staged}" DIRECTORY)
    file(MAKE_DIRECTORY "${staged_parent}")

    if(EXISTS "${source_dir}/${relative_path}")
      set(source "${source_dir}/${relative_path}")
      file(COPY_FILE "${source}" "${staged}" ONLY_IF_DIFFERENT)
    elseif(EXISTS "${source_dir}/${relative_path}.gz")
      set(source "${source_dir}/${relative_path}.gz")
      # Decompress only when the archive is newer than the staged copy or the copy is not the
      # listed one (edited, truncated): a plain re-configure stays fast.
      set(staged_sha256 "")
      if(EXISTS "${staged}")
        file(SHA256 "${staged}" staged_sha256)
      endif()
      if("${source}" IS_NEWER_THAN "${staged}" OR NOT staged_sha256 STREQUAL expected_sha256)
        find_program(SHOREDAQ_GZIP gzip)
        if(NOT SHOREDAQ_GZIP)
          message(FATAL_ERROR "shoredaq: gzip is needed to unpack ${source} (Debian package gzip)")
        endif()
        # Into a temporary name first, so an interrupted configure never leaves a half file behind.
        execute_process(COMMAND "${SHOREDAQ_GZIP}" -dc "${source}" OUTPUT_FILE "${staged}.part"
          RESULT_VARIABLE gzip_result ERROR_VARIABLE gzip_error)
        if(NOT gzip_result EQUAL 0)
          file(REMOVE "${staged}.part")
          message(FATAL_ERROR "shoredaq: cannot unpack ${source}: ${gzip_error}")
        endif()
        file(RENAME "${staged}.part" "${staged}")
      endif()
    else()
      message(FATAL_ERROR "shoredaq: ${manifest} lists ${relative_path}, but neither "
        "${source_dir}/${relative_path} nor ${source_dir}/${relative_path}.gz exists")
    endif()
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${source}")

    file(SHA256 "${staged}" staged_sha256)
    if(NOT staged_sha256 STREQUAL expected_sha256)
      message(FATAL_ERROR "shoredaq: ${staged} (from ${source}) has SHA-256 ${staged_sha256}, "
        "but ${manifest} lists ${expected_sha256}. If the file was replaced on purpose, update "
        "its line in SHA256SUMS (sha256sum of the uncompressed file).")
    endif()
    list(APPEND listed_sources "${source}")
    list(APPEND staged_files "${staged}")
  endforeach()
  if(NOT staged_files)
    message(FATAL_ERROR "shoredaq: ${manifest} lists no files")
  endif()

  # A data file added without a manifest line would silently be missing from the build tree.
  file(GLOB_RECURSE source_files LIST_DIRECTORIES false "${source_dir}/*")
  list(REMOVE_ITEM source_files "${manifest}" "${source_dir}/README.md" "${source_dir}/LICENSE"
    "${source_dir}/.gitattributes")
  list(REMOVE_ITEM source_files ${listed_sources})
  if(source_files)
    list(JOIN source_files "\n  " unlisted)
    message(FATAL_ERROR "shoredaq: reference data not listed in ${manifest}:\n  ${unlisted}\n"
      "Add a line for each (sha256sum of the uncompressed file), or remove the file.")
  endif()

  file(GLOB_RECURSE present_files LIST_DIRECTORIES false "${output_dir}/*")
  list(REMOVE_ITEM present_files ${staged_files})
  if(present_files)
    file(REMOVE ${present_files})
  endif()
endfunction()
