// The event store knows when its data is damaged: record checksums checked by every read and by
// verify (plain and deep), the schema-1 upgrade, and the hot backup (library level; the
// shore-events program is tested in shore_events_test.cpp).

#include <gtest/gtest.h>
#include <sys/file.h>
#include <xxhash.h>

#include <fstream>
#include <iterator>

#include "shoredaq/formats/fb_codec.hpp"
#include "shoredaq/storage/event_store.hpp"
#include "shoredaq/storage/store_backup.hpp"
#include "shoredaq/storage/store_upgrade.hpp"
#include "store_damage.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
using namespace shoredaq::storage::testing;
namespace fs = std::filesystem;

namespace {

constexpr std::int32_t kDetector = 14;
constexpr std::uint32_t kRun = 1;

EventStoreConfig config_for(const fs::path& dir) {
  EventStoreConfig c = small_store_config(dir, kDetector);
  c.max_map_bytes = 64 << 20;
  return c;
}

void write_store(const fs::path& dir) {
  EventStore store(config_for(dir));
  write_short_run(store, kDetector, kRun);
}

std::vector<std::uint8_t> file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The stored form, written out independently of the store's code: payload, then
// XXH3_64bits_withSeed(payload, XXH3_64bits(key)) little-endian.
std::vector<std::uint8_t> sealed(std::span<const std::uint8_t> key, std::span<const std::uint8_t> payload) {
  const std::uint64_t sum = XXH3_64bits_withSeed(payload.data(), payload.size(), XXH3_64bits(key.data(), key.size()));
  std::vector<std::uint8_t> v(payload.begin(), payload.end());
  for (int i = 0; i < 8; ++i) v.push_back(static_cast<std::uint8_t>(sum >> (8 * i)));
  return v;
}

// Replaces a value with a correctly sealed one through plain LMDB (a consistent-looking record
// with wrong content: only the deep cross-checks can see it).
void put_sealed(const fs::path& dir, const char* database, std::span<const std::uint8_t> key,
                std::span<const std::uint8_t> payload) {
  MDB_env* env = nullptr;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 8);
  ASSERT_EQ(mdb_env_open(env, dir.c_str(), 0, 0640), 0);
  MDB_txn* txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi dbi = 0;
  ASSERT_EQ(mdb_dbi_open(txn, database, 0, &dbi), 0);
  auto value = sealed(key, payload);
  MDB_val k{key.size(), const_cast<std::uint8_t*>(key.data())}, v{value.size(), value.data()};
  ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

// The raw values of one database of a store, by key text (plain LMDB, read-only).
std::map<std::string, std::vector<std::uint8_t>> raw_values(const fs::path& dir, StoreDatabase database) {
  std::map<std::string, std::vector<std::uint8_t>> out;
  const auto file = file_bytes(dir / "data.mdb");
  for (const auto& r : records_of(list_records(dir), database)) {
    out[r.key].assign(file.begin() + static_cast<std::ptrdiff_t>(r.value_offset),
                      file.begin() + static_cast<std::ptrdiff_t>(r.value_offset + r.value_size));
  }
  return out;
}

fs::path copy_schema1_fixture(const fs::path& to) {
  fs::create_directories(to);
  fs::copy_file(fs::path(SHOREDAQ_SOURCE_DIR) / "storage/tests/data/store_schema1/data.mdb", to / "data.mdb");
  return to;
}

}  // namespace

TEST(StoreIntegrity, CleanStoreVerifiesDeep) {
  TempDir dir("integrity");
  write_store(dir.path());
  const auto reader = EventStoreReader::open(dir.path());
  for (const bool deep : {false, true}) {
    const auto report = reader.verify(VerifyOptions{.deep = deep});
    EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems.front());
    EXPECT_EQ(report.deep, deep);
    EXPECT_EQ(report.events_checked, kShortRunEvents);
    EXPECT_EQ(report.summaries_checked, kShortRunFrames);
    EXPECT_EQ(report.runs_checked, 1u);
    EXPECT_EQ(report.meta_checked, 2u);  // schema_version, detector_id
    EXPECT_EQ(report.damaged_count, 0u);
  }
  EXPECT_EQ(reader.schema_version(), kStoreSchemaVersion);
  EXPECT_EQ(reader.integrity().damaged_records_refused, 0u);
}

// The acceptance test: bytes flipped at random positions inside stored records (never in free
// pages), few or many; verify, plain and deep, names exactly the damaged records.
TEST(StoreIntegrity, RandomByteFlipsInsideRecordsAreReportedByKey) {
  for (const auto& [flips, seed] : {std::pair{5u, 1u}, std::pair{5u, 2u}, std::pair{40u, 3u}, std::pair{200u, 4u}}) {
    SCOPED_TRACE("flips " + std::to_string(flips) + " seed " + std::to_string(seed));
    TempDir dir("integrity");
    write_store(dir.path());
    const auto records = list_records(dir.path());
    ASSERT_EQ(records.size(), 2 + 1 + kShortRunFrames + kShortRunEvents);
    const Damage damage = damage_random_bytes(dir.path(), records, flips, seed);
    ASSERT_EQ(damage.bytes_flipped, flips);
    const auto reader = EventStoreReader::open(dir.path());
    for (const bool deep : {false, true}) {
      const auto report = reader.verify(VerifyOptions{.deep = deep});
      EXPECT_FALSE(report.ok());
      EXPECT_EQ(report.damaged_count, damage.keys.size());
      EXPECT_EQ(keys_of(report.damaged), damage.keys);
      // Every record was still looked at: damage does not hide the records after it.
      EXPECT_EQ(report.events_checked, kShortRunEvents);
      EXPECT_EQ(report.summaries_checked, kShortRunFrames);
    }
  }
}

// Case (b) of the issue: a byte changed in event, summary and run records, written back through
// LMDB itself (valid pages). Every query refuses those records by key and counts them.
TEST(StoreIntegrity, QueriesRefuseRecordsRewrittenThroughLmdb) {
  TempDir dir("integrity");
  write_store(dir.path());
  // Frame 5 holds one event of ~1.3 KB (a leaf page); frame 39 one of ~3.6 KB (an overflow page).
  const auto e5 = event_key_bytes(kRun, 5, 0), e39 = event_key_bytes(kRun, 39, 0);
  rewrite_value_byte(dir.path(), "events", e5, 100);
  rewrite_value_byte(dir.path(), "events", e39, 3000);
  const std::array<std::uint8_t, 8> s7{0, 0, 0, 1, 0, 0, 0, 7};
  rewrite_value_byte(dir.path(), "summaries", s7, 40);
  const std::array<std::uint8_t, 4> r1{0, 0, 0, 1};
  rewrite_value_byte(dir.path(), "runs", r1, 20);

  const auto reader = EventStoreReader::open(dir.path());
  std::set<std::uint32_t> frames_seen;
  const auto events = reader.for_each_event(kRun, 0, UINT32_MAX, [&](const EventKey& k, std::span<const std::uint8_t> b) {
    EXPECT_TRUE(dataflow::decode_event_fb(b)) << k.frame;
    frames_seen.insert(k.frame);
    return true;
  });
  EXPECT_EQ(events.visited, kShortRunEvents - 2);
  EXPECT_EQ(events.damaged, 2u);
  EXPECT_EQ(keys_of(events.damaged_records),
            (std::set<std::pair<StoreDatabase, std::string>>{{StoreDatabase::Events, "1/5/0"},
                                                             {StoreDatabase::Events, "1/39/0"}}));
  EXPECT_FALSE(frames_seen.contains(5));
  EXPECT_TRUE(frames_seen.contains(6));
  const auto summaries = reader.for_each_summary(kRun, 5, 9, [](std::uint32_t, std::uint32_t, std::span<const std::uint8_t>) {
    return true;
  });
  EXPECT_EQ(summaries.visited, 4u);
  ASSERT_EQ(summaries.damaged_records.size(), 1u);
  EXPECT_EQ(summaries.damaged_records[0].describe(), "summary 1/7: checksum mismatch");
  // A damaged run record is not "no such run".
  try {
    (void)reader.run(kRun);
    ADD_FAILURE() << "a damaged run record was returned";
  } catch (const DamagedRecordError& e) {
    EXPECT_EQ(e.record().database, StoreDatabase::Runs);
    EXPECT_EQ(e.record().key, "1");
  }
  ReadResult runs;
  EXPECT_TRUE(reader.runs(&runs).empty());
  EXPECT_EQ(runs.damaged, 1u);
  const auto integrity = reader.integrity();
  EXPECT_EQ(integrity.damaged_records_refused, 2u + 1u + 1u + 1u);
  ASSERT_TRUE(integrity.last_damaged.has_value());
  EXPECT_EQ(integrity.last_damaged->key, "1");

  const auto report = reader.verify();
  EXPECT_EQ(report.damaged_count, 4u);
  EXPECT_NE(std::find(report.problems.begin(), report.problems.end(), "event 1/39/0: checksum mismatch"),
            report.problems.end());
}

// A writer meeting its run's damaged record keeps taking data: the record is replaced, counted.
TEST(StoreIntegrity, WriterReplacesADamagedRunRecordAndKeepsStoring) {
  TempDir dir("integrity");
  write_store(dir.path());
  const std::array<std::uint8_t, 4> r1{0, 0, 0, 1};
  rewrite_value_byte(dir.path(), "runs", r1, 20);
  EventStore store(config_for(dir.path()));
  const auto r = store.commit_slice(kRun, 100, make_slice_events(kDetector, kRun, 100, 2));
  ASSERT_TRUE(r) << r.message;
  EXPECT_EQ(store.counters().damaged_run_records_replaced, 1u);
  EXPECT_EQ(store.integrity().damaged_records_refused, 1u);
  const auto record = store.reader().run(kRun);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->counter(kCounterStoredEvents), 2u);  // counts restart: verify says so
  EXPECT_FALSE(store.reader().verify().ok());
}

// Values above ~2 KB live in LMDB overflow pages and start 8-byte aligned; the checksum trailer
// keeps them so, and readers get them without a copy (what fb_codec decodes in place).
TEST(StoreIntegrity, LargeValuesStayAlignedInPlace) {
  TempDir dir("integrity");
  write_store(dir.path());
  const auto reader = EventStoreReader::open(dir.path());
  std::size_t large = 0;
  reader.for_each_event(kRun, 0, UINT32_MAX, [&](const EventKey&, std::span<const std::uint8_t> b) {
    if (b.size() > 2100) {
      ++large;
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) % 8, 0u) << b.size();
    }
    return true;
  });
  EXPECT_GT(large, 0u);
}

// Records whose checksums are right but whose content disagrees: only the deep checks see it.
TEST(StoreIntegrity, DeepVerifyCrossChecksWhatChecksumsCannotSee) {
  TempDir dir("integrity");
  write_store(dir.path());
  {
    dataflow::RunRecord record = *EventStoreReader::open(dir.path()).run(kRun);  // closed again: one open per process
    record.first_frame = 5;  // frames 0..4 now lie outside the run's range
    const std::array<std::uint8_t, 4> r1{0, 0, 0, 1};
    const auto bytes = dataflow::encode_run_record_fb(record);
    put_sealed(dir.path(), "runs", r1, bytes);
  }
  {
    const std::array<std::uint8_t, 8> s7{0, 0, 0, 1, 0, 0, 0, 7};
    const auto bytes = dataflow::encode_summary_slice_fb(make_summary(99, kRun, 7, 36));  // another detector
    put_sealed(dir.path(), "summaries", s7, bytes);
  }
  const auto reader = EventStoreReader::open(dir.path());
  const auto plain = reader.verify();
  EXPECT_TRUE(plain.ok()) << plain.problems.front();
  const auto deep = reader.verify(VerifyOptions{.deep = true});
  EXPECT_FALSE(deep.ok());
  EXPECT_EQ(deep.damaged_count, 0u);
  auto mentions = [&](const std::string& text) {
    return std::any_of(deep.problems.begin(), deep.problems.end(),
                       [&](const std::string& p) { return p.find(text) != std::string::npos; });
  };
  EXPECT_TRUE(mentions("outside the run record's 5..39")) << deep.problems.front();
  EXPECT_TRUE(mentions("of detector 99")) << deep.problems.front();
}

// LMDB's own pages damaged (not a record): scans do not answer short, verify says which database.
TEST(StoreIntegrity, DamagedLmdbPagesAreDamageNotAShortAnswer) {
  TempDir dir("integrity");
  write_store(dir.path());
  break_database_root(dir.path(), "events");
  const auto reader = EventStoreReader::open(dir.path());
  EXPECT_THROW(reader.for_each_event(kRun, 0, UINT32_MAX, [](const EventKey&, std::span<const std::uint8_t>) { return true; }),
               StoreDamagedError);
  // The other databases still read.
  const auto summaries = reader.for_each_summary(kRun, 0, UINT32_MAX, [](std::uint32_t, std::uint32_t, std::span<const std::uint8_t>) {
    return true;
  });
  EXPECT_EQ(summaries.visited, kShortRunFrames);
  const auto report = reader.verify(VerifyOptions{.deep = true});
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.summaries_checked, kShortRunFrames);  // read after the damaged database, in a new transaction
  EXPECT_EQ(report.runs_checked, 1u);
  ASSERT_FALSE(report.problems.empty());
  EXPECT_NE(report.problems.front().find("events: reading stopped early, the database itself is damaged: MDB_"),
            std::string::npos)
      << report.problems.front();
}

TEST(StoreSchema, AStoreWrittenBeforeChecksumsIsRefusedWithTheUpgradeCommand) {
  TempDir dir("schema1");
  const fs::path store = copy_schema1_fixture(dir.path() / "store");
  const auto before = file_bytes(store / "data.mdb");
  try {
    EventStoreReader::open(store);
    ADD_FAILURE() << "opened";
  } catch (const StoreSchemaError& e) {
    EXPECT_EQ(e.found_version(), 1u);
    EXPECT_NE(std::string(e.what()).find("schema version 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("shore-events --store " + store.string() + " upgrade --to"),
              std::string::npos)
        << e.what();
  }
  auto config = config_for(store);
  config.detector_id = 21;
  EXPECT_THROW(EventStore writer(config), StoreSchemaError);
  EXPECT_EQ(file_bytes(store / "data.mdb"), before);  // the writer left it as it was
}

TEST(StoreSchema, UpgradeRewritesEveryRecordWithItsChecksum) {
  TempDir dir("schema1");
  const fs::path old_store = copy_schema1_fixture(dir.path() / "store");
  const auto old_events = raw_values(old_store, StoreDatabase::Events);
  ASSERT_EQ(old_events.size(), 15u);
  const auto before = file_bytes(old_store / "data.mdb");

  const fs::path new_store = dir.path() / "store.v2";
  const auto report = upgrade_store(old_store, new_store);
  EXPECT_TRUE(report.ok()) << (report.verify.problems.empty() ? "" : report.verify.problems.front());
  EXPECT_EQ(report.from_version, 1u);
  EXPECT_EQ(report.events, 15u);
  EXPECT_EQ(report.summaries, 10u);
  EXPECT_EQ(report.runs, 2u);
  EXPECT_EQ(report.meta, 2u);
  EXPECT_TRUE(report.verify.deep);
  EXPECT_EQ(file_bytes(old_store / "data.mdb"), before);
  EXPECT_FALSE(fs::exists(new_store / "lock.mdb"));
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".partial"), std::string::npos) << entry.path();
  }

  {
    const auto reader = EventStoreReader::open(new_store);
    EXPECT_EQ(reader.schema_version(), kStoreSchemaVersion);
    EXPECT_EQ(reader.detector_id(), 21);
    std::size_t same = 0;
    for (const std::uint32_t run : {3u, 4u}) {
      reader.for_each_event(run, 0, UINT32_MAX, [&](const EventKey& k, std::span<const std::uint8_t> b) {
        const std::string key = std::to_string(k.run) + "/" + std::to_string(k.frame) + "/" + std::to_string(k.event_number);
        const auto it = old_events.find(key);
        EXPECT_TRUE(it != old_events.end() && std::ranges::equal(it->second, b)) << key;
        ++same;
        return true;
      });
    }
    EXPECT_EQ(same, 15u);
    EXPECT_EQ(reader.run(3)->state, dataflow::RunOutcome::Stopped);
  }
  // The daemon's writer takes the upgraded store and goes on.
  {
    auto config = config_for(new_store);
    config.detector_id = 21;
    EventStore store(config);
    EXPECT_TRUE(store.commit_slice(5, 0, make_slice_events(21, 5, 0, 2)));
    EXPECT_TRUE(store.reader().verify(VerifyOptions{.deep = true}).ok());
  }
  EXPECT_THROW(upgrade_store(new_store, dir.path() / "again"), StoreError);     // already current
  EXPECT_THROW(upgrade_store(old_store, new_store), StoreError);                // target not empty
  EXPECT_THROW(upgrade_store(dir.path() / "nothing", dir.path() / "x"), StoreError);
}

TEST(StoreSchema, UpgradeRefusesAStoreHeldByAWriter) {
  TempDir dir("schema1");
  const fs::path old_store = copy_schema1_fixture(dir.path() / "store");
  const int fd = ::open((old_store / "writer.lock").c_str(), O_RDWR | O_CREAT, 0640);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);  // what a running (old) daemon holds
  try {
    upgrade_store(old_store, dir.path() / "new");
    ADD_FAILURE() << "upgraded under a writer";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("writer"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.path() / "new"));
  ::close(fd);
  EXPECT_TRUE(upgrade_store(old_store, dir.path() / "new").ok());
}

TEST(StoreBackup, CopiesVerifiesAndPutsInPlace) {
  TempDir dir("backup");
  const fs::path store = dir.path() / "store";
  write_store(store);
  fs::create_directories(dir.path() / "empty");
  {
    const auto reader = EventStoreReader::open(store);
    const auto report = backup_store(reader, dir.path() / "empty");  // an empty directory is fine
    EXPECT_TRUE(report.ok());
    EXPECT_TRUE(report.verify.deep);
    EXPECT_EQ(report.verify.events_checked, kShortRunEvents);
    EXPECT_EQ(report.bytes, fs::file_size(dir.path() / "empty" / "data.mdb"));
    EXPECT_THROW(backup_store(reader, dir.path() / "empty"), StoreError);  // not empty any more
  }
  EXPECT_EQ(raw_values(dir.path() / "empty", StoreDatabase::Events), raw_values(store, StoreDatabase::Events));

  // A copy of a damaged store is made, and says it does not verify.
  const auto records = records_of(list_records(store), StoreDatabase::Events);
  const Damage damage = damage_random_bytes(store, records, 3, 7);
  const auto reader = EventStoreReader::open(store);
  const auto report = backup_store(reader, dir.path() / "of-damaged/");
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(keys_of(report.verify.damaged), damage.keys);
  EXPECT_TRUE(fs::exists(dir.path() / "of-damaged" / "data.mdb"));
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".partial"), std::string::npos) << entry.path();
  }
}
