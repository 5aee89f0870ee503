"""The foundation against real parts: Mosquitto accepts MQTT 5 clients, Daphne serves sign-in and the admin."""

import re
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import paho.mqtt.client as mqtt
import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_mosquitto_round_trip(broker):
    received = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, msg: received.append(msg.payload)
    client.connect(broker.host, broker.port)
    client.subscribe("devices/ROUNDTRIP_TEST/status", qos=1)  # a topic no other test retains on
    client.loop_start()
    try:
        client.publish("devices/ROUNDTRIP_TEST/status", b'{"status":"online"}', qos=1).wait_for_publish(5)
        for _ in range(50):
            if received:
                break
            import time

            time.sleep(0.1)
    finally:
        client.disconnect()
        client.loop_stop()
    assert received == [b'{"status":"online"}']


def sign_in(base_url: str, username: str, password: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(f"{base_url}/accounts/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
    request = urllib.request.Request(f"{base_url}/accounts/login/", data=form.encode(),
                                     headers={"Referer": f"{base_url}/accounts/login/"})  # fmt: skip
    opener.open(request)
    return opener


def test_daphne_serves_sign_in_and_the_admin_lists_demo_pumps(daphne_server):
    call_command("seed_demo", password="a-test-password")
    anonymous = urllib.request.urlopen(f"{daphne_server.url}/")
    assert "/accounts/login/" in anonymous.url, "anonymous users are sent to sign in"
    clinician = sign_in(daphne_server.url, "clinician", "a-test-password")
    overview = clinician.open(f"{daphne_server.url}/").read().decode()
    assert "PUMP_0001" in overview and "PUMP_0003" in overview
    admin = sign_in(daphne_server.url, "admin", "a-test-password")
    listing = admin.open(f"{daphne_server.url}/admin/devices/device/").read().decode()
    assert all(pump in listing for pump in ("PUMP_0001", "PUMP_0002", "PUMP_0003"))
