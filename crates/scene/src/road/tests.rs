use super::*;

/// The narrowest plate, in pixels, that the plate reader is known to read on the demo clip.
const MIN_PLATE_PX: u32 = 90;

fn scene() -> SceneManifest {
    default_manifest()
}

fn v<'a>(m: &'a SceneManifest, id: &str) -> &'a SceneVehicle {
    m.vehicle(id).expect("the default scene has this vehicle")
}

fn past(m: &SceneManifest, v: &SceneVehicle, frame: u64) -> bool {
    let p = m.reference_point(v, frame).expect("in view");
    spec::past_line(m, v, p)
}

/// Even-odd test of a point against a polygon.
fn inside(polygon: &[Point], p: Point) -> bool {
    let mut hit = false;
    for i in 0..polygon.len() {
        let (a, b) = (polygon[i], polygon[(i + 1) % polygon.len()]);
        if (a[1] > p[1]) != (b[1] > p[1])
            && p[0] < a[0] + (p[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0])
        {
            hit = !hit;
        }
    }
    hit
}

#[test]
fn the_default_scene_lasts_about_seventeen_seconds() {
    let m = scene();
    let seconds = m.frames as f64 / f64::from(m.fps);
    assert!((15.0..=19.0).contains(&seconds), "{seconds} s");
    assert_eq!((m.width, m.height, m.fps), (1280, 720, 25));
    assert!(m.vehicles.iter().all(|v| v.last_frame < m.frames));
}

#[test]
fn each_crossing_frame_is_the_first_with_the_reference_point_past_the_line() {
    let m = scene();
    for v in &m.vehicles {
        let c = v.crossing_frame;
        assert!(c > v.first_frame && c <= v.last_frame, "{}", v.id);
        assert!(
            !past(&m, v, c - 1),
            "{} is past the line before it crosses",
            v.id
        );
        assert!(
            past(&m, v, c),
            "{} is not past the line when it crosses",
            v.id
        );
        assert!(
            (v.first_frame..c).all(|i| !past(&m, v, i)),
            "{} is past the line early",
            v.id
        );
    }
}

#[test]
fn vehicles_driving_towards_cross_the_line_downwards_and_away_upwards() {
    let m = scene();
    for v in &m.vehicles {
        let before = m.reference_point(v, v.crossing_frame - 1).expect("in view");
        let after = m.reference_point(v, v.crossing_frame).expect("in view");
        let line_y = m.counting_line[0][1];
        match v.direction {
            Direction::Towards => {
                assert!(before[1] < line_y && after[1] > line_y, "{}", v.id);
                assert!(m.side_of_line(before) < 0.0 && m.side_of_line(after) > 0.0);
            }
            Direction::Away => {
                assert!(before[1] > line_y && after[1] < line_y, "{}", v.id);
                assert!(m.side_of_line(before) > 0.0 && m.side_of_line(after) < 0.0);
            }
        }
    }
}

#[test]
fn vehicles_driving_towards_grow_and_those_driving_away_shrink() {
    let m = scene();
    for v in &m.vehicles {
        let first = m.vehicle_box(v, v.first_frame).expect("in view");
        let last = m.vehicle_box(v, v.last_frame).expect("in view");
        match v.direction {
            Direction::Towards => assert!(last.w > first.w && last.y > first.y, "{}", v.id),
            Direction::Away => assert!(last.w < first.w && last.y < first.y, "{}", v.id),
        }
        if let Some(before) = v.first_frame.checked_sub(1) {
            assert_eq!(m.vehicle_box(v, before), None);
        }
        assert_eq!(m.vehicle_box(v, v.last_frame + 1), None);
    }
}

#[test]
fn a_stopped_vehicle_keeps_its_box_still_for_eight_seconds() {
    let m = scene();
    let v5 = v(&m, "V5");
    let stop = v5.stop.expect("V5 stops");
    assert_eq!(stop.to_frame - stop.from_frame, 8 * u64::from(m.fps));
    let still = m.vehicle_box(v5, stop.from_frame).expect("in view");
    for i in stop.from_frame..=stop.to_frame {
        assert_eq!(m.vehicle_box(v5, i), Some(still), "frame {i}");
    }
    assert_ne!(m.vehicle_box(v5, stop.from_frame - 1), Some(still));
    assert_ne!(m.vehicle_box(v5, stop.to_frame + 1), Some(still));
    assert!(m.vehicles.iter().filter(|v| v.stop.is_some()).count() == 1);
}

#[test]
fn the_stopping_bus_crosses_the_line_before_it_stops_and_stops_well_past_it() {
    let m = scene();
    let v5 = v(&m, "V5");
    let stop = v5.stop.expect("V5 stops");
    // The device reports a vehicle that stays too long at that moment, with its direction:
    // V5 must have crossed by then, and be seen moving past the line for a while first.
    assert!(
        v5.crossing_frame + 10 <= stop.from_frame,
        "V5 crosses on frame {} and stops on frame {}",
        v5.crossing_frame,
        stop.from_frame
    );
    let line_y = m.counting_line[0][1];
    for i in stop.from_frame..=stop.to_frame {
        assert!(past(&m, v5, i), "frame {i}");
        let [_, y] = m.reference_point(v5, i).expect("in view");
        assert!((0.72..=0.78).contains(&y), "frame {i}: wheels at {y}");
        assert!(y >= line_y + 0.1, "frame {i}: wheels at {y}");
        let plate = m.plate_box(v5, i).expect("V5 has a plate");
        assert!(plate.w >= MIN_PLATE_PX, "frame {i}: plate {} px", plate.w);
    }
    assert!(
        (v5.crossing_frame..=v5.last_frame).all(|i| past(&m, v5, i)),
        "V5 stays past the line once it has crossed"
    );
}

#[test]
fn no_vehicle_comes_into_view_where_another_has_just_left() {
    let m = scene();
    assert_eq!(REAPPEAR_GAP, 2 * u64::from(m.fps));
    for gone in &m.vehicles {
        let left = m.vehicle_box(gone, gone.last_frame).expect("in view");
        for came in m.vehicles.iter().filter(|v| v.id != gone.id) {
            let after = came.first_frame.checked_sub(gone.last_frame);
            if !after.is_some_and(|d| (1..=REAPPEAR_GAP).contains(&d)) {
                continue;
            }
            let entered = m.vehicle_box(came, came.first_frame).expect("in view");
            assert!(
                !left.overlaps(&entered),
                "{} comes into view on frame {}, {} frames after {} left from {left:?}, at \
                 {entered:?}",
                came.id,
                came.first_frame,
                came.first_frame - gone.last_frame,
                gone.id
            );
        }
    }
    let (v4, v6) = (v(&m, "V4"), v(&m, "V6"));
    let (left, entered) = (
        m.vehicle_box(v4, v4.last_frame).expect("in view"),
        m.vehicle_box(v6, v6.first_frame).expect("in view"),
    );
    assert!(
        left.overlaps(&entered),
        "V6 comes into view where V4 left it"
    );
    assert!(
        v6.first_frame > v4.last_frame + REAPPEAR_GAP,
        "so it waits 2 s"
    );
}

#[test]
fn plates_lie_on_the_body_above_the_bumper() {
    /// The least margin, in pixels, between a plate and the edges of what it is mounted on.
    const MARGIN: i32 = 2;
    let check = |what: &str, p: &Placement| {
        let (plate, body, bumper) = (p.plate_box(), p.body_box(), p.bumper_box());
        assert!(
            plate.x - body.x >= MARGIN
                && body.right() - plate.right() >= MARGIN
                && plate.y - body.y >= MARGIN
                && body.bottom() - plate.bottom() >= MARGIN,
            "{what}: plate {plate:?} is not inside the body {body:?}"
        );
        assert!(
            bumper.y - plate.bottom() >= MARGIN,
            "{what}: plate {plate:?} is not above the bumper {bumper:?}"
        );
    };
    let m = scene();
    for v in m.vehicles.iter().filter(|v| v.plate.is_some()) {
        for i in v.first_frame..=v.last_frame {
            check(
                &format!("{} frame {i}", v.id),
                &m.placement(v, i).expect("in view"),
            );
        }
    }
    let (narrow, wide) = (
        (FAR_WIDTH * f64::from(WIDTH)).round() as u32,
        (NEAR_WIDTH * f64::from(WIDTH)).round() as u32,
    );
    for kind in [VehicleType::Truck, VehicleType::Bus] {
        for w in narrow..=wide {
            for bottom in [330, 331, 500, 690] {
                let p = Placement {
                    cx: 640,
                    bottom,
                    w,
                    kind,
                };
                check(&format!("{} {w} px wide at {bottom}", kind.as_str()), &p);
            }
        }
    }
}

#[test]
fn bus_plates_are_framed_by_body_colour_and_no_plate_touches_the_bumper() {
    let m = scene();
    let font = load_font().expect("DejaVu Sans Bold is installed");
    let bumper = [40, 40, 45];
    for v in m.vehicles.iter().filter(|v| v.plate.is_some()) {
        for i in [v.first_frame, v.crossing_frame, v.last_frame] {
            let img = render_scene_frame(&m, &font, i);
            let plate = m.plate_box(v, i).expect("in view");
            // The ring of pixels 1 to 2 px outside the plate.
            for y in plate.y - 2..plate.bottom() + 2 {
                for x in plate.x - 2..plate.right() + 2 {
                    let on_plate =
                        x >= plate.x && x < plate.right() && y >= plate.y && y < plate.bottom();
                    if on_plate {
                        continue;
                    }
                    let px = img.get_pixel(x as u32, y as u32).0;
                    assert_ne!(px, bumper, "{} frame {i}: bumper at ({x}, {y})", v.id);
                    // The plate drawing lets the last character of the region code run over the
                    // plate's right edge, so only the other three sides are plain body colour.
                    if v.kind == VehicleType::Bus && x < plate.right() {
                        assert_eq!(px, v.colour, "{} frame {i}: at ({x}, {y})", v.id);
                    }
                }
            }
        }
    }
}

#[test]
fn v1_and_v2_drive_side_by_side() {
    let m = scene();
    let (v1, v2) = (v(&m, "V1"), v(&m, "V2"));
    assert_ne!(v1.lane, v2.lane);
    assert!(v1.first_frame <= v2.last_frame && v2.first_frame <= v1.last_frame);
    assert!(v1.crossing_frame.abs_diff(v2.crossing_frame) <= 5);
}

#[test]
fn v3_follows_v1_in_the_same_lane_and_is_drawn_behind_it() {
    let m = scene();
    let (v1, v3) = (v(&m, "V1"), v(&m, "V3"));
    assert_eq!(v1.lane, v3.lane);
    assert_eq!(v1.direction, v3.direction);
    assert!(
        v3.first_frame > v1.crossing_frame && v3.first_frame < v1.last_frame,
        "V3 comes into view while V1, past the line, is still in view"
    );
    let gap = v3.crossing_frame - v1.crossing_frame;
    assert!(
        gap <= 4 * u64::from(m.fps),
        "V3 crosses {gap} frames after V1"
    );
    assert!(
        v3.crossing_frame >= v1.last_frame + 15,
        "V3 is seen on its own for a while before it reaches the line"
    );
    let first = m.vehicle_box(v3, v3.first_frame).expect("in view");
    assert!(first.overlaps(&m.vehicle_box(v1, v3.first_frame).expect("in view")));
    for i in v3.first_frame..=v1.last_frame {
        let (b1, b3) = (
            m.vehicle_box(v1, i).expect("in view"),
            m.vehicle_box(v3, i).expect("in view"),
        );
        assert!(
            b3.bottom() < b1.bottom(),
            "frame {i}: V3 is farther than V1"
        );
        let order: Vec<&str> = m.in_view(i).iter().map(|(v, _)| v.id.as_str()).collect();
        let pos = |id| order.iter().position(|o| *o == id);
        assert!(pos("V3") < pos("V1"), "frame {i}: V3 is drawn before V1");
    }
}

#[test]
fn only_the_tailgater_overlaps_another_vehicle() {
    let m = scene();
    for i in 0..m.frames {
        let order = m.in_view(i);
        for (k, (a, p)) in order.iter().enumerate() {
            for (b, q) in &order[k + 1..] {
                if p.vehicle_box().overlaps(&q.vehicle_box()) {
                    assert_eq!((a.id.as_str(), b.id.as_str()), ("V3", "V1"), "frame {i}");
                }
            }
        }
    }
}

#[test]
fn no_plate_is_ever_covered_by_a_nearer_vehicle() {
    let m = scene();
    for i in 0..m.frames {
        let order = m.in_view(i);
        for (k, (v, p)) in order.iter().enumerate() {
            if v.plate.is_none() {
                continue;
            }
            let plate = p.plate_box();
            for (near, q) in &order[k + 1..] {
                assert!(
                    !plate.overlaps(&q.vehicle_box()),
                    "frame {i}: the plate of {} is covered by {}",
                    v.id,
                    near.id
                );
            }
        }
    }
}

#[test]
fn every_plate_is_wide_enough_to_read_while_crossing() {
    let m = scene();
    for v in m.vehicles.iter().filter(|v| v.plate.is_some()) {
        for i in v.crossing_frame.saturating_sub(10)..=v.crossing_frame + 10 {
            if let Some(b) = m.plate_box(v, i) {
                assert!(b.w >= MIN_PLATE_PX, "{} frame {i}: plate {} px", v.id, b.w);
            }
        }
        let wide = (v.first_frame..=v.last_frame)
            .filter(|&i| m.plate_box(v, i).is_some_and(|b| b.w >= MIN_PLATE_PX))
            .count() as u64;
        assert!(
            wide * 10 >= (v.last_frame - v.first_frame + 1) * 9,
            "{}",
            v.id
        );
    }
}

#[test]
fn reference_points_stay_in_their_lane_and_boxes_in_the_frame() {
    let m = scene();
    for v in &m.vehicles {
        let lane = m
            .lanes
            .iter()
            .find(|l| l.id == v.lane.id())
            .expect("the lane is a zone of the scene");
        for i in v.first_frame..=v.last_frame {
            let p = m.reference_point(v, i).expect("in view");
            assert!(inside(&lane.polygon, p), "{} frame {i} at {p:?}", v.id);
            let b = m.vehicle_box(v, i).expect("in view");
            assert!(b.x >= 0 && b.y >= 0, "{} frame {i}", v.id);
            assert!(b.right() <= m.width as i32 && b.bottom() <= m.height as i32);
        }
    }
}

#[test]
fn the_scene_has_the_counting_line_and_two_lanes_as_documented() {
    let m = scene();
    assert_eq!(m.counting_line, [[0.0, 0.62], [1.0, 0.62]]);
    let ids: Vec<&str> = m.lanes.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, [LANE_1, LANE_2]);
    assert!(inside(&m.lanes[0].polygon, [0.30, 0.8]));
    assert!(inside(&m.lanes[1].polygon, [0.70, 0.8]));
    assert!(
        !inside(&m.lanes[0].polygon, [0.30, 0.1]),
        "the sky is in no lane"
    );
}

#[test]
fn each_vehicle_raises_the_violations_of_the_scene_rules() {
    let m = scene();
    let expect = [
        (
            "V1",
            Some("123ABC01"),
            VehicleType::Truck,
            vec![RULE_WANTED],
        ),
        ("V2", Some("505AB17"), VehicleType::Bus, vec![RULE_BUS_BAN]),
        (
            "V3",
            Some("777KZA02"),
            VehicleType::Truck,
            vec![RULE_WANTED],
        ),
        ("V4", None, VehicleType::Truck, vec![RULE_NO_PLATE]),
        ("V5", Some("248EKM09"), VehicleType::Bus, vec![]),
        (
            "V6",
            Some("901TRK14"),
            VehicleType::Truck,
            vec![RULE_WRONG_WAY],
        ),
    ];
    assert_eq!(m.vehicles.len(), expect.len());
    for (id, plate, kind, rules) in expect {
        let v = v(&m, id);
        assert_eq!(v.plate.as_deref(), plate, "{id}");
        assert_eq!(v.kind, kind, "{id}");
        assert_eq!(v.violations, rules, "{id}");
    }
    assert!(m.rules.hotlist.iter().any(|e| e == "777KZAO2"));
    assert!(
        !m.rules.hotlist.iter().any(|e| e == "777KZA02"),
        "V3 matches only fuzzily"
    );
    assert_eq!(v(&m, "V6").direction, Direction::Away);
    assert_eq!(v(&m, "V2").lane.id(), m.rules.bus_ban_lane);
}

#[test]
fn the_manifest_reads_back_from_json_with_the_documented_names() {
    let m = scene();
    let text = serde_json::to_string(&m).expect("serialises");
    assert_eq!(
        serde_json::from_str::<SceneManifest>(&text).expect("parses"),
        m
    );
    let json: serde_json::Value = serde_json::from_str(&text).expect("parses");
    let v4 = &json["vehicles"][3];
    assert_eq!(v4["id"], "V4");
    assert!(v4["plate"].is_null());
    assert_eq!(v4["type"], "truck");
    assert_eq!(v4["lane"], "lane-2");
    assert_eq!(v4["direction"], "towards");
    assert_eq!(json["vehicles"][5]["direction"], "away");
    assert_eq!(json["vehicles"][4]["type"], "bus");
    assert!(json["vehicles"][4]["stop"]["from_frame"].is_u64());
}

#[test]
fn plates_are_drawn_where_the_manifest_says_and_v4_has_none() {
    let m = scene();
    let font = load_font().expect("DejaVu Sans Bold is installed");
    // Shares of the box that are plate white and that are as dark as the plate's characters.
    let shares = |img: &image::RgbImage, b: PixelBox| {
        let (mut white, mut dark) = (0u32, 0u32);
        for y in b.y..b.bottom() {
            for x in b.x..b.right() {
                let p = img.get_pixel(x as u32, y as u32).0;
                white += u32::from(p.iter().all(|&c| c > 200));
                dark += u32::from(p.iter().all(|&c| c < 40));
            }
        }
        let n = f64::from(b.w * b.h);
        (f64::from(white) / n, f64::from(dark) / n)
    };
    for v in &m.vehicles {
        let i = v.crossing_frame;
        let img = render_scene_frame(&m, &font, i);
        let p = m.placement(v, i).expect("in view");
        let (white, dark) = shares(&img, p.plate_box());
        if v.plate.is_some() {
            assert!(
                white > 0.5 && dark > 0.05,
                "{}: {white} white, {dark} dark",
                v.id
            );
        } else {
            assert!(
                white < 0.01,
                "{}: {white} of the plate box is plate white",
                v.id
            );
        }
    }
}

#[test]
fn a_written_scene_is_reused_while_its_manifest_matches() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let clip = dir.path().join("scene.mp4");
    let short = SceneSpec {
        vehicles: vec![default_scene().vehicles[1].clone()],
        tail_frames: 0,
    };
    let mut spec = short.clone();
    spec.vehicles[0].travel_frames = 10;
    spec.vehicles[0].enter_frame = 0;
    let m = spec.manifest();
    assert_eq!(m.frames, 11);
    let written = ensure_scene_with(&m, &clip).expect("the scene is written");
    assert_eq!(written, m);
    let size = std::fs::metadata(&clip).expect("clip").len();
    assert!(size > 1000, "{size} bytes");
    let read: SceneManifest = serde_json::from_str(
        &std::fs::read_to_string(scene_manifest_path(&clip)).expect("manifest"),
    )
    .expect("parses");
    assert_eq!(read, m);
    // A clip whose manifest matches is kept; a changed scene is drawn again.
    std::fs::write(&clip, b"kept").expect("overwrite");
    assert_eq!(ensure_scene_with(&m, &clip).expect("reused"), m);
    assert_eq!(std::fs::read(&clip).expect("clip"), b"kept");
    spec.vehicles[0].travel_frames = 12;
    let changed = spec.manifest();
    assert_eq!(
        ensure_scene_with(&changed, &clip).expect("redrawn"),
        changed
    );
    assert!(std::fs::metadata(&clip).expect("clip").len() > 1000);
}
