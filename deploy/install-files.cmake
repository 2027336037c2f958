# Run by `cmake --install` (install(SCRIPT) in CMakeLists.txt) once the prefix is final, which
# `--prefix` may change after configuration: installs the configuration and the systemd unit with
# that prefix's paths written into them. DESTDIR is honoured (file(INSTALL) prepends it), and
# every file lands in install_manifest.txt.
#
# Set before this runs (install(CODE)): SG_SOURCE_DIR, SG_STAGING_DIR (a scratch directory),
# SG_BINDIR, SG_SYSCONFDIR, SG_DOCDIR, SG_SYSTEMD_UNITDIR (as configured; relative ones are under
# the prefix).

# GNUInstallDirs' special cases, applied to the install-time prefix (CMAKE_INSTALL_FULL_*
# were computed for the configure-time prefix): the prefix /usr keeps its configuration in /etc,
# /opt/<name> keeps it in /etc/opt/<name>; any other prefix in <prefix>/etc.
function(sg_full_dir out dir)
  if(IS_ABSOLUTE "${dir}")
    set(full "${dir}")
  elseif(dir STREQUAL "etc" AND CMAKE_INSTALL_PREFIX MATCHES "^/usr/?$")
    set(full "/etc")
  elseif(dir STREQUAL "etc" AND CMAKE_INSTALL_PREFIX MATCHES "^/opt/")
    set(full "/etc${CMAKE_INSTALL_PREFIX}")
  else()
    set(full "${CMAKE_INSTALL_PREFIX}/${dir}")
  endif()
  string(REGEX REPLACE "/+" "/" full "${full}")
  string(REGEX REPLACE "(.)/$" "\\1" full "${full}")
  set(${out} "${full}" PARENT_SCOPE)
endfunction()

sg_full_dir(bindir "${SG_BINDIR}")
sg_full_dir(sysconfdir "${SG_SYSCONFDIR}")
sg_full_dir(docdir "${SG_DOCDIR}")
sg_full_dir(unitdir "${SG_SYSTEMD_UNITDIR}")
file(MAKE_DIRECTORY "${SG_STAGING_DIR}")

# The configuration: the documented gateway.toml, with the memory store's snapshot in the unit's
# StateDirectory (systemd always puts it under /var/lib, whatever the prefix).
file(READ "${SG_SOURCE_DIR}/gateway.toml" config)
string(REPLACE "\nsnapshot_path = \"\"\n"
               "\nsnapshot_path = \"/var/lib/sessiongate/sessions.snapshot\"\n" config "${config}")
if(NOT config MATCHES "\nsnapshot_path = \"/var/lib/sessiongate/sessions.snapshot\"\n")
  message(FATAL_ERROR "install: gateway.toml has no `snapshot_path = \"\"` line to set")
endif()
file(WRITE "${SG_STAGING_DIR}/gateway.toml" "${config}")
set(config_dir "${sysconfdir}/sessiongate")
set(installed_config "$ENV{DESTDIR}${config_dir}/gateway.toml")
set(config_name gateway.toml)
if(EXISTS "${installed_config}")
  file(READ "${installed_config}" existing)
  if(NOT existing STREQUAL config)
    # An operator's file is never overwritten; the new default goes beside it.
    set(config_name gateway.toml.new)
    message(STATUS "Keeping ${installed_config}; the shipped default is ${config_name}")
  endif()
endif()
file(INSTALL "${SG_STAGING_DIR}/gateway.toml" DESTINATION "${config_dir}" RENAME "${config_name}"
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# The unit, with the paths of this prefix.
file(READ "${SG_SOURCE_DIR}/deploy/systemd/sessiongate.service" unit)
string(REPLACE "/usr/bin/sessiongate" "${bindir}/sessiongate" unit "${unit}")
string(REPLACE "/etc/sessiongate/" "${config_dir}/" unit "${unit}")
string(REPLACE "/usr/share/doc/sessiongate/" "${docdir}/" unit "${unit}")
file(WRITE "${SG_STAGING_DIR}/sessiongate.service" "${unit}")
file(INSTALL "${SG_STAGING_DIR}/sessiongate.service" DESTINATION "${unitdir}"
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
