#pragma once
// ZeroMQ CURVE keys for every program that opens a network socket (the node, du-sim, shorectl):
// key pairs, key files with strict permission checks, allow-lists, and the client side of a
// CURVE connection. The server side, with its ZAP handler, lives with the node
// (shoredaq/firmware/security.hpp).
//
// Key files are text: '#' comment lines and one Z85-encoded key (40 characters).
// A secret key file must be a regular file (not a symlink) owned by the effective user with
// mode 0600 or 0400; anything else is refused with a KeyFileError saying what to fix.

#include <zmq.hpp>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace shoredaq::dataflow {

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

class KeyFileError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// True when libzmq was built with CURVE (libsodium).
bool curve_available();
// A fresh key pair (zmq_curve_keypair). Throws std::runtime_error without CURVE support.
CurveKeyPair generate_curve_key_pair();
// The public key belonging to a Z85 secret key (zmq_curve_public).
std::string curve_public_key_of(std::string_view secret_key_z85);
// 40 characters of the Z85 alphabet that decode to 32 bytes.
bool is_curve_key(std::string_view z85);

// Writes `<secret_path>` (mode 0600) and `<public_path>` (mode 0644). Never overwrites an existing
// file: a lost secret key is better noticed than silently replaced. Throws KeyFileError.
void write_curve_key_files(const std::filesystem::path& secret_path, const std::filesystem::path& public_path,
                           const CurveKeyPair& keys);
// Reads a secret key file after the permission checks above; returns the secret key and its
// derived public key. Throws KeyFileError naming the file and the problem.
CurveKeyPair read_secret_key_file(const std::filesystem::path& path);
// Reads a public key file (must not be writable by group or others). Throws KeyFileError.
std::string read_public_key_file(const std::filesystem::path& path);
// Allow-list: a file with one public key per line ('#' comments, also after a key), or a
// directory whose *.pub files each hold one key. Must not be writable by group or others.
std::vector<std::string> read_allowed_keys(const std::filesystem::path& file_or_directory);

// The Z85 text of a 32-byte key.
std::string curve_key_z85(const std::uint8_t* key32);

// Makes `socket` a CURVE client of the server with `server_public_key`. Call before connect().
void make_curve_client(zmq::socket_t& socket, const CurveKeyPair& client_keys, std::string_view server_public_key);

}  // namespace shoredaq::dataflow
