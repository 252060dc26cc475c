# cmake --install writes the libraries, headers and a package config, so that a user's project
# can do find_package(Lapis) and link lapis::lapis.
include(CMakePackageConfigHelpers)

get_property(lapis_targets GLOBAL PROPERTY LAPIS_LIBRARY_TARGETS)
install(TARGETS ${lapis_targets} lapis_lapis EXPORT LapisTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/lapis)
foreach(dir core kernels graph geometry models)
  install(DIRECTORY ${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/lapis/${dir}
          FILES_MATCHING PATTERN "*.h")
endforeach()

set(LAPIS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Lapis)
install(EXPORT LapisTargets NAMESPACE lapis:: DESTINATION ${LAPIS_CMAKE_DIR})
configure_package_config_file(cmake/LapisConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/LapisConfig.cmake INSTALL_DESTINATION ${LAPIS_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/LapisConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/LapisConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/LapisConfigVersion.cmake
        DESTINATION ${LAPIS_CMAKE_DIR})
if(TARGET lapis)
  install(TARGETS lapis RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
