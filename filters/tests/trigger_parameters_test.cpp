#include "shoredaq/filters/trigger_parameters.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace shoredaq::filters;
using ::testing::HasSubstr;

TEST(TriggerParameters, DefaultsAreTheDomainValues) {
  const TriggerParameters p;
  EXPECT_EQ(p.l1_window_ns, 10.0);
  EXPECT_EQ(p.snapshot_window_ns, 1000.0);
  EXPECT_EQ(p.shower3d.number_of_hits, 3);
  EXPECT_EQ(p.shower3d.number_of_modules, 3);
  EXPECT_EQ(p.shower3d.d_max_m, 52.0);
  EXPECT_EQ(p.mxshower.number_of_hits, 8);
  EXPECT_EQ(p.mxshower.d_max_m, 47.0);
  EXPECT_EQ(p.muon3d.number_of_hits, 4);
  EXPECT_EQ(p.muon3d.number_of_modules, 4);
  EXPECT_EQ(p.muon3d.d_max_m, 164.9);
  EXPECT_EQ(p.muon3d.road_width_m, 43.0);
  EXPECT_EQ(p.muon3d.grid_angle_deg, 10.0);
  EXPECT_EQ(p.muon3d.t_max_extra_ns, 25.0);
  EXPECT_EQ(p.muon3d.factory_limit, 100);
  EXPECT_EQ(p.high_rate_veto_hz, 1e6);
  EXPECT_EQ(p.prescale_l1, 20);
  EXPECT_EQ(p.snapshot_max_distance_m, 0.0);  // every DOM
}

TEST(TriggerParameters, MissingSectionGivesDefaults) {
  auto r = parse_trigger_parameters("[other]\nx = 1\n");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(*r.parameters, TriggerParameters{});
}

TEST(TriggerParameters, ReadsSubTables) {
  auto r = parse_trigger_parameters(R"(
[trigger]
snapshot_window_ns = 500
hrv_policy = "keep"
[trigger.l1]
window_ns = 25.0
combine = false
[trigger.muon3d]
enabled = false
number_of_hits = 6
road_width_m = 60
grid_angle_deg = 5.5
[trigger.mxshower]
factory_limit = 250
[trigger.prescale]
l1 = 0
l0 = 1000
)");
  ASSERT_TRUE(r.ok()) << r.error;
  const auto& p = *r.parameters;
  EXPECT_EQ(p.snapshot_window_ns, 500.0);
  EXPECT_EQ(p.hrv_policy, HrvPolicy::Keep);
  EXPECT_EQ(p.l1_window_ns, 25.0);
  EXPECT_FALSE(p.combine_l1);
  EXPECT_FALSE(p.muon3d.enabled);
  EXPECT_EQ(p.muon3d.number_of_hits, 6);
  EXPECT_EQ(p.muon3d.road_width_m, 60.0);
  EXPECT_EQ(p.muon3d.grid_angle_deg, 5.5);
  EXPECT_EQ(p.mxshower.factory_limit, 250);
  EXPECT_EQ(p.prescale_l1, 0);
  EXPECT_EQ(p.prescale_l0, 1000);
  EXPECT_TRUE(p.shower3d.enabled);
}

TEST(TriggerParameters, UnknownKeysNameTheirPath) {
  auto r = parse_trigger_parameters("[trigger.muon3d]\nroad_width = 40\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("trigger.muon3d.road_width"));
  EXPECT_THAT(r.error, HasSubstr("unknown"));
  r = parse_trigger_parameters("[trigger]\nsnapshot_ns = 40\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("trigger.snapshot_ns"));
  r = parse_trigger_parameters("[trigger.nanobeacon]\nenabled = true\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("trigger.nanobeacon"));
}

TEST(TriggerParameters, OutOfRangeNamesKeyAndRange) {
  auto r = parse_trigger_parameters("[trigger.muon3d]\nroad_width_m = -3\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("trigger.muon3d.road_width_m"));
  EXPECT_THAT(r.error, HasSubstr("[1, 500]"));
  r = parse_trigger_parameters("[trigger.shower3d]\nnumber_of_hits = 1\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("trigger.shower3d.number_of_hits"));
  EXPECT_THAT(r.error, HasSubstr("[2, 10000]"));
  r = parse_trigger_parameters("[trigger.l2]\nct_min = 1.5\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("trigger.l2.ct_min"));
  r = parse_trigger_parameters("[trigger.muon3d]\nnumber_of_hits = 4\nnumber_of_modules = 5\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("trigger.muon3d.number_of_modules"));
}

TEST(TriggerParameters, WrongTypesAreRejected) {
  auto r = parse_trigger_parameters("[trigger.l1]\ncombine = 1\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("trigger.l1.combine"));
  r = parse_trigger_parameters("[trigger.muon3d]\nnumber_of_hits = 4.5\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("trigger.muon3d.number_of_hits"));
  r = parse_trigger_parameters("[trigger]\nhrv_policy = \"maybe\"\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("trigger.hrv_policy"));
  r = parse_trigger_parameters("trigger = 3\n");
  ASSERT_FALSE(r.ok());
}

TEST(TriggerParameters, SyntaxErrorsGiveTheLine) {
  auto r = parse_trigger_parameters("[trigger]\n\nsnapshot_window_ns = = 3\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("line 3"));
}

TEST(TriggerParameters, ToTomlRoundTrips) {
  TriggerParameters p;
  p.muon3d.d_max_m = 164.9;
  p.muon3d.road_width_m = 41.25;
  p.l1_window_ns = 25;
  p.combine_l1 = false;
  p.hrv_policy = HrvPolicy::Keep;
  p.shower3d.enabled = false;
  p.prescale_sn = 7;
  p.snapshot_max_distance_m = 250;
  const std::string text = to_toml(p);
  EXPECT_THAT(text, HasSubstr("[trigger.muon3d]"));
  EXPECT_THAT(text, HasSubstr("d_max_m = 164.9\n"));
  auto r = parse_trigger_parameters(text);
  ASSERT_TRUE(r.ok()) << r.error << "\n" << text;
  EXPECT_EQ(*r.parameters, p);
}

// An operator fixes a run setup in one go: every bad key is named, not only the first one.
TEST(TriggerParameters, EveryBadKeyIsNamed) {
  auto r = parse_trigger_parameters("[trigger.muon]\nnumberOfHits = 5\n[trigger.muon3d]\nroad_width_m = -3\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("trigger.muon: unknown key"));
  EXPECT_THAT(r.error, HasSubstr("trigger.muon3d.road_width_m = -3: out of range [1, 500]"));
  r = parse_trigger_parameters("[trigger.muon3d]\nnumber_of_hits = -1\ngrid_angle_deg = 0\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("trigger.muon3d.number_of_hits = -1"));
  EXPECT_THAT(r.error, HasSubstr("trigger.muon3d.grid_angle_deg = 0"));
}
