/*
 * zoom.c - the zoom tool's arguments: a box on the 0-1000 scale of the
 * page image the model saw, checked (finite numbers, the right arity, the
 * right order) and made usable (clamped to the page, at least a minimum
 * size), then mapped to a region of the page, to pixels of a raster, to
 * points of the shown page, and to the DPI at which a PDF region fills
 * the vision tower's pixel budget.
 */
#include "pipeline.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/model.h"

static double clamp1000(double v)
{
	return v < 0 ? 0 : v > 1000 ? 1000 : v;
}

int ed_pipeline_zoom_parse(const char *name, const char *arguments,
			   struct ed_zoom_box *box, char *err, size_t errlen)
{
	json_t *j, *bb, *label;
	json_error_t je;
	double v[4];
	int rc = 0;

	memset(box, 0, sizeof *box);
	if (!name)
		return ed_err(err, errlen, ED_EFORMAT,
			      "the tool call is not {\"name\": ..., "
			      "\"arguments\": {...}} JSON");
	if (strcmp(name, ED_ZOOM_TOOL) != 0)
		return ed_err(
		    err, errlen, ED_EFORMAT,
		    "unknown tool '%.60s'; the only tool is " ED_ZOOM_TOOL,
		    name);
	j = json_loads(arguments ? arguments : "", JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(j)) {
		json_decref(j);
		return ed_err(err, errlen, ED_EFORMAT,
			      "the arguments are not a JSON object: %s",
			      j ? "not an object" : je.text);
	}
	bb = json_object_get(j, "bbox_2d");
	if (!json_is_array(bb) || json_array_size(bb) != 4) {
		rc = ed_err(err, errlen, ED_EFORMAT,
			    "bbox_2d must be [x1, y1, x2, y2]");
		goto out;
	}
	for (size_t i = 0; i < 4; i++) {
		json_t *e = json_array_get(bb, i);
		if (!json_is_number(e) || !isfinite(json_number_value(e))) {
			rc = ed_err(err, errlen, ED_EFORMAT,
				    "bbox_2d[%zu] is not a finite number", i);
			goto out;
		}
		v[i] = json_number_value(e);
	}
	for (size_t i = 0; i < 4; i++)
		v[i] = clamp1000(v[i]);
	if (!(v[2] > v[0]) || !(v[3] > v[1])) {
		rc = ed_err(err, errlen, ED_EFORMAT,
			    "bbox_2d [%g, %g, %g, %g] is empty or inverted: "
			    "x1 < x2 and y1 < y2 on a 0-1000 scale",
			    v[0], v[1], v[2], v[3]);
		goto out;
	}
	/* too small to be worth a look: grown around its centre */
	for (int a = 0; a < 2; a++) {
		double lo = v[a], hi = v[a + 2];
		if (hi - lo < ED_ZOOM_MIN) {
			double c = (lo + hi) / 2;
			lo = c - ED_ZOOM_MIN / 2.0;
			hi = c + ED_ZOOM_MIN / 2.0;
			if (lo < 0)
				hi -= lo, lo = 0;
			if (hi > 1000)
				lo -= hi - 1000, hi = 1000;
			v[a] = lo;
			v[a + 2] = hi;
		}
	}
	box->x1 = v[0];
	box->y1 = v[1];
	box->x2 = v[2];
	box->y2 = v[3];
	label = json_object_get(j, "label");
	if (json_is_string(label))
		snprintf(box->label, sizeof box->label, "%s",
			 json_string_value(label));
out:
	json_decref(j);
	return rc;
}

struct ed_rect ed_pipeline_zoom_rect(const struct ed_zoom_box *b)
{
	return (struct ed_rect){b->x1 / 1000, b->y1 / 1000, b->x2 / 1000,
				b->y2 / 1000};
}

void ed_pipeline_zoom_points(const struct ed_zoom_box *b, double width_pt,
			     double height_pt, double pts[4])
{
	pts[0] = b->x1 / 1000 * width_pt;
	pts[1] = b->y1 / 1000 * height_pt;
	pts[2] = b->x2 / 1000 * width_pt;
	pts[3] = b->y2 / 1000 * height_pt;
}

double ed_pipeline_zoom_dpi(const struct ed_zoom_box *b, double width_pt,
			    double height_pt, uint64_t max_pixels)
{
	double w_in = (b->x2 - b->x1) / 1000 * width_pt / 72;
	double h_in = (b->y2 - b->y1) / 1000 * height_pt / 72;
	/* a whole pixel under the budget on each side: the region's raster
	 * rounds up */
	double dpi =
	    w_in > 0 && h_in > 0
		? (floor(sqrt((double)max_pixels * w_in / h_in)) - 1) / w_in
		: 72;

	/* at least the first raster's sharpness; at most what still helps */
	return dpi < 72 ? 72 : dpi > ED_ZOOM_MAX_DPI ? ED_ZOOM_MAX_DPI : dpi;
}
