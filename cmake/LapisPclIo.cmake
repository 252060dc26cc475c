# PCD file IO in lapis::pcl (geometry/pcl/pcl_interop.cpp: read_pcd/write_pcd) needs PCL's io
# component (libpcl_io), which the PCL block of the top-level CMakeLists.txt does not request.
# Include this file right after that block:  include(cmake/LapisPclIo.cmake)
# The library is linked by file (not through the pcl_io imported target), so that lapis::pcl's
# exported link interface stays a list of PCL component libraries without VTK targets.
if(TARGET lapis_pcl)
  find_library(LAPIS_PCL_IO_LIBRARY NAMES pcl_io HINTS ${PCL_LIBRARY_DIRS})
  find_library(LAPIS_PCL_IO_PLY_LIBRARY NAMES pcl_io_ply HINTS ${PCL_LIBRARY_DIRS})
  if(LAPIS_PCL_IO_LIBRARY)
    target_link_libraries(lapis_pcl PUBLIC ${LAPIS_PCL_IO_LIBRARY} ${LAPIS_PCL_IO_PLY_LIBRARY})
  else()
    message(WARNING "Lapis: libpcl_io not found; lapis::pcl's read_pcd/write_pcd will not link")
  endif()
endif()
